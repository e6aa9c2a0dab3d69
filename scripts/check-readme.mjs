// pnpm check:readme [--write]: the programs of the READMEs are files under examples/readme/src, which typecheck with
// the workspace and whose tests run them offline. A code block preceded by `<!-- file: <path> -->` must be that file,
// byte for byte; every `ts` block of the root README must be such a block. `--write` copies the files into the
// READMEs instead of checking them.
import fs from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const write = process.argv.includes("--write")
const readmes = [
  "README.md",
  ...fs
    .readdirSync(path.join(root, "packages"))
    .map((name) => path.join("packages", name, "README.md"))
    .filter((file) => fs.existsSync(path.join(root, file)))
]

// A marker line, then a fence of any language, its body, and the closing fence.
const block = /^<!-- file: (\S+) -->\n(```+)(\w*)\n([\s\S]*?)^\2$/gm
const problems = []
let checked = 0

for (const readme of readmes) {
  const text = fs.readFileSync(path.join(root, readme), "utf8")
  const marked = new Set()
  const updated = text.replace(block, (whole, file, fence, language, body, offset) => {
    marked.add(offset + whole.indexOf(fence))
    const source = path.join(root, file)
    if (!fs.existsSync(source)) {
      problems.push(`${readme}: ${file} does not exist`)
      return whole
    }
    checked++
    const content = fs.readFileSync(source, "utf8")
    if (content === body) return whole
    if (!write) problems.push(`${readme}: the block of ${file} differs from the file (pnpm check:readme --write)`)
    return `<!-- file: ${file} -->\n${fence}${language}\n${content}${fence}`
  })
  if (readme === "README.md") {
    for (const match of text.matchAll(/^```ts$/gm)) {
      if (!marked.has(match.index)) {
        const line = text.slice(0, match.index).split("\n").length
        problems.push(`${readme}:${line}: a ts block without <!-- file: ... -->: keep it as a file that runs`)
      }
    }
  }
  if (write && updated !== text) {
    fs.writeFileSync(path.join(root, readme), updated)
    console.log(`check:readme: updated ${readme}`)
  }
}

if (problems.length > 0) {
  console.error(problems.join("\n"))
  process.exit(1)
}
console.log(`check:readme: ${checked} code blocks are their files`)
