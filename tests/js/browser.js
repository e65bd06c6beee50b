// A real headless Chromium page (puppeteer-core, Debian's chromium):
//   node browser.js PAGE_URL SCREENSHOT CHROMIUM USER_DATA_DIR [--ignore-certificate-errors]
// loads the page (served by midge from http_dir), waits until it has
// connected, subscribed and published (prints READY), then until it has
// received a message (printed as JSON with the console errors seen),
// saves a screenshot, and exits 1 on any console error or page error.
"use strict";
const puppeteer = require("puppeteer-core");
const [pageUrl, shot, chromium, userDir, extra] = process.argv.slice(2);

(async () => {
  const args = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--user-data-dir=" + userDir,
  ];
  if (extra) args.push(extra);
  const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args });
  const errors = [];
  let code = 1;
  try {
    const page = await browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    page.on("pageerror", (e) => errors.push("pageerror: " + e.message));
    page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
    await page.goto(pageUrl, { waitUntil: "load", timeout: 15000 });
    await page.waitForFunction(() => window.mqttState === "subscribed", { timeout: 15000 });
    console.log("READY");
    await page.waitForFunction(() => window.received !== undefined, { timeout: 15000 });
    const received = await page.evaluate(() => window.received);
    await page.screenshot({ path: shot });
    console.log(JSON.stringify({ received, errors }));
    code = errors.length ? 1 : 0;
  } catch (e) {
    console.log(JSON.stringify({ failed: e.message, errors }));
  } finally {
    await browser.close();
  }
  process.exit(code);
})();
