-- man.lua - pandoc filter for midge's man pages (docs/Makefile.inc).
--
-- docs/configuration.md keeps every key in tables whose first column is
-- "key"; wide tables do not fit a terminal, so each row becomes what man
-- pages use for options (.TP): the key as the term, the "meaning" cell as
-- the text, and the other columns ("default", "Mosquitto") on one
-- labelled line under it. Links become their text: a man page cannot
-- follow them. Level-1 headings are upper case, as man's sections are.

local function cell_blocks(cell)
  return cell.contents
end

local function cell_inlines(cell)
  local out = pandoc.List()
  for _, b in ipairs(cell.contents) do
    if b.t == "Plain" or b.t == "Para" then
      if #out > 0 then out:insert(pandoc.Space()) end
      out:extend(b.content)
    end
  end
  return out
end

function Table(tbl)
  local head = tbl.head.rows[1]
  if not head then return nil end
  local names = {}
  for i, c in ipairs(head.cells) do
    names[i] = pandoc.utils.stringify(c.contents)
  end
  if names[1] ~= "key" then return nil end
  local items = pandoc.List()
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.body) do
      local term = cell_inlines(row.cells[1])
      local text = pandoc.List()
      for i, name in ipairs(names) do
        if name == "meaning" then
          for _, b in ipairs(cell_blocks(row.cells[i])) do
            if b.t == "Plain" then b = pandoc.Para(b.content) end
            text:insert(b)
          end
        end
      end
      local line = pandoc.List()
      for i, name in ipairs(names) do
        local v = cell_inlines(row.cells[i])
        if i > 1 and name ~= "meaning" and #v > 0 then
          if #line > 0 then line:extend({pandoc.Str(";"), pandoc.Space()}) end
          line:insert(pandoc.Emph({pandoc.Str(name:sub(1, 1):upper() .. name:sub(2) .. ":")}))
          line:insert(pandoc.Space())
          line:extend(v)
        end
      end
      if #line > 0 then text:insert(pandoc.Para(line)) end
      items:insert({term, {text}})
    end
  end
  return pandoc.DefinitionList(items)
end

function Link(link)
  return link.content
end

-- GitHub's tables need "\|" for a bar inside a code span; pandoc keeps
-- the backslash there.
function Code(code)
  code.text = code.text:gsub("\\|", "|")
  return code
end

function Header(h)
  if h.level == 1 then
    return pandoc.walk_block(h, {Str = function(s) return pandoc.Str(s.text:upper()) end})
  end
end
