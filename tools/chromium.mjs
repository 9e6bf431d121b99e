// How the repo's browser tests and benchmarks start Chromium: the Debian package (installed by
// tools/setup-chromium.sh; CHROMIUM_PATH overrides), headless, without the sandbox (CI runs as
// root), a GPU, /dev/shm (small in containers) or anything that reaches the network on its own.
export function chromiumLaunchOptions() {
  return {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
    ],
  };
}
