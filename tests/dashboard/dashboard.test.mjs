// Drives midge's dashboard in headless Chromium (Debian's /usr/bin/chromium)
// with puppeteer-core; tests/integration/test_dashboard.py starts the broker,
// the MQTT clients and the publisher around it and passes:
//   MIDGE_URL, MIDGE_USER, MIDGE_PASS   the dashboard and an admin login
//   MIDGE_VICTIM                        a connected client id to kick
//   MIDGE_ARTIFACTS                     where the screenshots go
// Prints one "ok NAME" / "not ok NAME: why" line per check, then a JSON line.
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const url = process.env.MIDGE_URL;
const victim = process.env.MIDGE_VICTIM;
const artifacts = process.env.MIDGE_ARTIFACTS || ".";
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });

const results = [];
function check(name, ok, why) {
  results.push({ name, ok: !!ok, why: ok ? "" : String(why || "") });
  console.log((ok ? "ok " : "not ok ") + name + (ok ? "" : ": " + why));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A broker under a sanitizer (build.sh's TSan run) answers several times
// slower: every wait grows with it, the assertions stay the same.
const SCALE = Math.max(1, Number(process.env.MIDGE_TIME_SCALE || 1));

const profile = mkdtempSync(join(tmpdir(), "midge-chromium-"));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
  ],
  defaultViewport: { width: 1400, height: 1000 },
  protocolTimeout: 30000 * SCALE,
});

const consoleErrors = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push("page error: " + e.message));
  page.on("dialog", (d) => d.accept());
  await page.authenticate({ username: process.env.MIDGE_USER, password: process.env.MIDGE_PASS });

  // 1. the page loads and fills its tiles
  const res = await page.goto(url, { waitUntil: "load", timeout: 15000 * SCALE });
  check("page loads", res && res.status() === 200, res && res.status());
  await page.waitForFunction(() => document.getElementById("t-connected").textContent !== "–", { timeout: 10000 * SCALE });
  check("overview shows connected clients",
    Number(await page.$eval("#t-connected", (e) => e.textContent)) >= 1,
    await page.$eval("#t-connected", (e) => e.textContent));

  // 2. the rate chart moves while the test publishes
  await page.waitForFunction(() => Number((document.getElementById("chart-rate").dataset.last || "").split(",")[0]) > 0,
    { timeout: 15000 * SCALE });
  const first = await page.$eval("#chart-rate", (c) => ({ img: c.toDataURL(), last: c.dataset.last, points: c.dataset.points }));
  await sleep(2500);
  const second = await page.$eval("#chart-rate", (c) => ({ img: c.toDataURL(), last: c.dataset.last, points: c.dataset.points }));
  const rateIn = Number(second.last.split(",")[0]);
  check("rate chart shows messages in", rateIn > 0, second.last);
  check("rate chart moves", first.img !== second.img && Number(second.points) > Number(first.points),
    `points ${first.points} -> ${second.points}`);
  await page.screenshot({ path: join(artifacts, "dashboard-overview.png") });

  // 3. the live event tail follows client events
  await page.goto(url + "#events", { waitUntil: "load" });
  await page.$eval("#events-prefix", (e) => { e.value = "client."; });
  await page.click("#events-start");
  await page.waitForFunction(() => document.getElementById("events-state").textContent === "following", { timeout: 5000 * SCALE });

  // 4. the clients table shows the test's client, and its button kicks it
  await page.evaluate(() => { location.hash = "#clients"; });
  const row = `tr[data-clientid="${victim}"]`;
  await page.waitForSelector(row, { timeout: 10000 * SCALE });
  check("clients table shows the test client", true);
  await page.screenshot({ path: join(artifacts, "dashboard-clients.png") });
  // The table is rebuilt on every refresh: find and click the button in
  // one task of the page, so a refresh cannot detach it in between.
  await page.$eval(`${row} button.kick`, (b) => b.click());
  let gone = false;
  for (let i = 0; i < 50 && !gone; i++) {
    await sleep(200);
    gone = (await page.$(row)) === null;
  }
  check("kicked client leaves the table", gone, "still listed after 10 s");

  await page.evaluate(() => { location.hash = "#events"; });
  const sawDisconnect = await page.waitForFunction(
    (id) => [...document.querySelectorAll("#events-list li")].some((li) =>
      li.textContent.startsWith("client.disconnected") && li.textContent.includes('"client_id":"' + id + '"') &&
      li.textContent.includes('"rc":152')),
    { timeout: 10000 * SCALE }, victim).then(() => true, () => false);
  check("event tail shows the kick (client.disconnected, rc 152)", sawDisconnect, "not in the list");
  await page.screenshot({ path: join(artifacts, "dashboard-events.png") });

  await page.evaluate(() => { location.hash = "#overview"; });
  // MIDGE_SHOT_WAIT_MS: let the charts fill before the last screenshot
  await sleep(Number(process.env.MIDGE_SHOT_WAIT_MS || 1500));
  await page.screenshot({ path: join(artifacts, "dashboard.png") });
} catch (e) {
  check("dashboard run", false, e.stack || e.message);
} finally {
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
check("no console errors", consoleErrors.length === 0, consoleErrors.join(" | "));
console.log(JSON.stringify({ results }));
process.exit(results.every((r) => r.ok) ? 0 : 1);
