// The account console in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM), driven by
// playwright-core: sign in with a token, add funds, wait until the worker has applied them
// (the balance on the page changes), assign a licence, download the usage report, take a
// screenshot. Prints one JSON object on stdout; tests/test_api_live.py judges it.
//
//   node console.mjs URL TOKEN AMOUNT LICENCE_USER OUT_DIR
import { chromium } from "playwright-core";
import path from "node:path";

const [url, token, amount, licenceUser, outDir] = process.argv.slice(2);
const result = { errors: [], external: [], steps: [] };
const origin = new URL(url).origin;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.errors.push(m.text()); });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("requestfailed", (r) => result.errors.push(`failed: ${r.url()}`));
  page.on("response", (r) => { if (r.status() >= 400) result.errors.push(`${r.status()}: ${r.url()}`); });
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("blob:") && !u.startsWith("data:")) result.external.push(u);
  });
  const text = (sel) => page.locator(sel).innerText();

  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#sign-in button[type=submit]");
  await page.waitForFunction(() => /^-?\d+\.\d{4}$/.test(document.getElementById("balance").textContent));
  result.who = await text("#who");
  result.before = await text("#balance");
  result.steps.push("signed in");

  await page.fill("#funds-amount", amount);
  await page.click("#funds button[type=submit]");
  await page.waitForFunction(() => document.getElementById("funds-status").textContent.startsWith("Accepted"));
  result.accepted = await text("#funds-status");
  const before = result.before;
  await page.waitForFunction(
    (b) => document.getElementById("balance").textContent !== b, before, { timeout: 30000 });
  result.after = await text("#balance");
  await page.waitForFunction(() => document.getElementById("funds-status").textContent.startsWith("Applied"));
  result.applied = await text("#funds-status");
  result.steps.push("funds applied");

  await page.fill("#licence-user", licenceUser);
  await page.click("#licence-add button[type=submit]");
  await page.waitForSelector(`#licences input[data-user="${licenceUser}"]:checked`, { timeout: 30000 });
  result.licensed = await page.locator("#licences input:checked").evaluateAll((xs) => xs.map((x) => x.dataset.user));
  result.steps.push("licence assigned");

  await page.waitForSelector("#charges tbody tr");
  result.charges = await page.locator("#charges tbody tr").count();
  result.pools = await page.locator("#pools .pool").count();
  result.lots = await page.locator("#lots tbody tr").count();

  const download = page.waitForEvent("download");
  await page.click("#report button[type=submit]");
  const file = await download;
  result.download = path.join(outDir, file.suggestedFilename());
  await file.saveAs(result.download);
  await page.waitForFunction(() => document.getElementById("report-status").textContent.startsWith("Downloaded"));
  result.steps.push("report downloaded");

  result.screenshot = path.join(outDir, "console.png");
  await page.screenshot({ path: result.screenshot, fullPage: true });
  result.steps.push("screenshot");
} catch (e) {
  result.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
