// Copy the browser assets the web UI serves from node_modules (installed by `npm ci` from
// package-lock.json) into the plugin's static/vendor directory. No bundler: noVNC ships ES
// modules that browsers load as they are; xterm.js and htmx ship ready-made files. The
// output is generated (gitignored), never edited, and carries each package's licence file.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = process.env.BHYPE_WEBUI_VENDOR_DIR || join(here, "..", "src", "bhype_webui", "static", "vendor");

// package -> [source path inside the package, destination inside vendor/<dir>]
const PACKAGES = {
  "@novnc/novnc": { dir: "novnc", files: [["core", "core"], ["vendor/pako", "vendor/pako"], ["LICENSE.txt", "LICENSE.txt"]] },
  "@xterm/xterm": { dir: "xterm", files: [["lib/xterm.js", "xterm.js"], ["css/xterm.css", "xterm.css"], ["LICENSE", "LICENSE"]] },
  "@xterm/addon-fit": { dir: "xterm", files: [["lib/addon-fit.js", "addon-fit.js"], ["LICENSE", "LICENSE.addon-fit"]] },
  "htmx.org": { dir: "htmx", files: [["dist/htmx.min.js", "htmx.min.js"], ["LICENSE", "LICENSE"]] },
  // uPlot: the charts of the monitor plugin (any plugin may use /ui/static/vendor/uplot/).
  uplot: { dir: "uplot", files: [["dist/uPlot.iife.min.js", "uPlot.iife.min.js"], ["dist/uPlot.min.css", "uPlot.min.css"], ["LICENSE", "LICENSE"]] },
};

rmSync(out, { recursive: true, force: true });
const manifest = {};
for (const [name, spec] of Object.entries(PACKAGES)) {
  const root = join(modules, name);
  if (!existsSync(join(root, "package.json"))) {
    console.error(`missing ${name}: run 'npm ci' in ${here} first`);
    process.exit(1);
  }
  const { version, license } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  for (const [from, to] of spec.files) {
    const target = join(out, spec.dir, to);
    mkdirSync(dirname(target), { recursive: true });
    // Source maps and TypeScript sources stay behind: they are not served.
    cpSync(join(root, from), target, { recursive: true, filter: (p) => !p.endsWith(".map") && !p.endsWith(".ts") });
  }
  manifest[name] = { version, license, dir: spec.dir };
}
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`web UI assets copied to ${out}: ${Object.entries(manifest).map(([n, m]) => `${n}@${m.version}`).join(", ")}`);
