#!/usr/bin/env python3
"""Drive the dashboard of a running `lifeboat daemon` in headless Chromium (Selenium with the
system's chromium and chromedriver), for crates/cli/tests/dashboard.rs.

  browser.py main  --url URL --out DIR --expect JSON --slow NAME
      every page loads without console errors and passes the accessibility checks; the
      overview shows each source with the status `health --json` gave (JSON: name -> status);
      "Back up now" on source NAME shows the job live, then a new successful run; screenshots
      of every page go to DIR/dashboard-*.png.
  browser.py login --url URL --out DIR      (tokens in LB_BAD_TOKEN and LB_READ_TOKEN)
      a page needs a login; a wrong token is refused; the read-only token logs in and shows
      no action buttons.
  browser.py report --url file:///…/report.html --out DIR   (for crates/cli/tests/report.rs)
      the HTML of `lifeboat report` loads from disk without console errors or requests
      elsewhere, shows its charts, passes the accessibility checks; screenshot DIR/report.png.

Prints what it checked; exits 1 with the reasons on the first failed check.
"""

import argparse
import json
import os
import shutil
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

A11Y_JS = r"""
const problems = [];
const parse = (c) => {
  const m = /rgba?\(([^)]+)\)/.exec(c || "");
  if (!m) return null;
  const p = m[1].split(",").map(parseFloat);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0.5) return c;
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
const describe = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "");
// Form fields have labels; buttons and links have names.
for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
  const byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
  if (!byFor && !el.closest("label") && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) {
    problems.push("form field without a label: " + el.outerHTML);
  }
}
for (const el of document.querySelectorAll("button, a[href]")) {
  if (!(el.textContent.trim() || el.getAttribute("aria-label"))) problems.push("no accessible name: " + el.outerHTML);
}
for (const el of document.querySelectorAll("svg[role=img], progress")) {
  if (!el.getAttribute("aria-label")) problems.push("no text alternative: " + describe(el));
}
// One h1, first; no skipped heading levels.
const levels = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")].map((h) => +h.tagName[1]);
if (levels.filter((l) => l === 1).length !== 1) problems.push("h1 count is " + levels.filter((l) => l === 1).length);
if (levels[0] !== 1) problems.push("the first heading is not h1");
for (let i = 1; i < levels.length; i++) {
  if (levels[i] > levels[i - 1] + 1) problems.push("heading level skips from h" + levels[i - 1] + " to h" + levels[i]);
}
if (!document.documentElement.lang) problems.push("no lang on <html>");
if (!document.title.trim()) problems.push("no <title>");
if (!document.querySelector("main")) problems.push("no <main> landmark");
// Contrast of every visible piece of text with its background: at least 4.5:1.
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const seen = new Set();
let checked = 0;
while (walker.nextNode()) {
  const t = walker.currentNode;
  const el = t.parentElement;
  if (!t.textContent.trim() || !el || seen.has(el)) continue;
  seen.add(el);
  const st = getComputedStyle(el);
  const r = el.getBoundingClientRect();
  if (st.visibility === "hidden" || st.display === "none" || el.closest("[hidden], title") || r.width === 0 || r.height === 0 || r.right < 0) continue;
  const svg = el instanceof SVGElement;
  const fg = parse(svg ? st.fill : st.color);
  if (!fg) continue;
  const bg = background(svg ? el.closest("svg") : el);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  checked++;
  if (ratio < 4.5) problems.push("contrast " + ratio.toFixed(2) + ":1 for '" + t.textContent.trim().slice(0, 40) + "' (" + describe(el) + ")");
}
return { problems: problems, checked: checked };
"""

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
        raise SystemExit(finish())


def finish():
    if failures:
        print("\n".join(["", "failed:"] + failures), file=sys.stderr)
        return 1
    return 0


def browser():
    o = Options()
    o.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
              "--disable-extensions", "--no-first-run", "--password-store=basic"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=o, service=service)


def console_errors(d):
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


def audit(d, name, out, prefix="dashboard-"):
    """Console, accessibility, screenshot of the whole page."""
    errors = console_errors(d)
    check(not errors, f"{name}: no console errors {errors if errors else ''}")
    r = d.execute_script(A11Y_JS)
    check(r["checked"] >= 5, f"{name}: contrast checked on {r['checked']} text elements")
    check(not r["problems"], f"{name}: accessibility basics (labels, headings, contrast) {r['problems'] if r['problems'] else ''}")
    # The whole page: grow the window until the viewport holds the document.
    for _ in range(4):
        inner, height = d.execute_script(
            "return [window.innerHeight, Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)]")
        if inner >= height or height > 8000:
            break
        size = d.get_window_size()
        d.set_window_size(1280, size["height"] + (height - inner) + 10)
    path = os.path.join(out, f"{prefix}{name}.png")
    d.save_screenshot(path)
    d.set_window_size(1280, 900)
    print(f"      screenshot {path}")


def wait(d, seconds, cond, what):
    # The page reloads itself: between two polls a row can be gone, stale, or parsed only in
    # part (fewer cells than it will have), which is "not yet", not a failure.
    ignored = [StaleElementReferenceException, NoSuchElementException, IndexError]
    try:
        return WebDriverWait(d, seconds, poll_frequency=0.2, ignored_exceptions=ignored).until(cond)
    except TimeoutException:
        check(False, f"{what} within {seconds} s")


def load(d, url, name):
    d.get(url)
    wait(d, 10, lambda x: x.execute_script("return document.readyState") == "complete", f"{name} loads")
    h1 = d.find_elements(By.TAG_NAME, "h1")
    check(len(h1) == 1, f"{name}: loaded ({h1[0].text if h1 else 'no h1'})")
    return h1[0].text


def row(d, source):
    return d.find_element(By.CSS_SELECTOR, f'tr[data-source="{source}"]')


def main_flow(args):
    expect = json.loads(args.expect)
    base = args.url.rstrip("/")
    d = browser()
    try:
        load(d, base + "/", "overview")
        for name, status in expect.items():
            r = row(d, name)
            shown = r.get_attribute("data-status")
            check(shown == status, f"overview: {name} shows {shown!r}, health --json says {status!r}")
            badge = r.find_element(By.CSS_SELECTOR, "td .badge").text
            check(badge == status.upper(), f"overview: {name}'s status reads {badge!r}")
        last_backup = row(d, args.slow).find_elements(By.TAG_NAME, "td")[1].text
        check(last_backup == "never", f"overview: {args.slow} has no backup yet ({last_backup!r})")
        audit(d, "overview", args.out)

        # Back up now: the job shows live, then the run is in the history.
        row(d, args.slow).find_element(By.CSS_SELECTOR, 'button[data-action="backup"]').click()
        wait(d, 10, lambda x: "queued=" in x.current_url, "the action redirects back with a notice")
        notice = d.find_element(By.CSS_SELECTOR, "p.notice").text
        check(args.slow in notice, f"overview: notice {notice!r}")
        job = f"backup:{args.slow}"
        li = wait(d, 20, lambda x: x.find_element(By.CSS_SELECTOR, f'#running li[data-job="{job}"]'), "the running job appears")
        text = li.text
        check(f"Backup of {args.slow}" in text, f"overview: running job shows {text!r}")
        wait(d, 10, lambda x: "backup of" in x.find_element(By.CSS_SELECTOR, f'#running li[data-job="{job}"] .detail').text,
             "the running job reports its step")
        detail = d.find_element(By.CSS_SELECTOR, f'#running li[data-job="{job}"] .detail').text
        check("backup of" in detail, f"overview: progress text {detail!r}")
        d.set_window_size(1280, 900)
        d.save_screenshot(os.path.join(args.out, "dashboard-progress.png"))
        print(f"      screenshot {os.path.join(args.out, 'dashboard-progress.png')}")
        # The page reloads itself once the run is recorded.
        wait(d, 90, lambda x: x.find_element(By.CSS_SELECTOR, f'tr[data-source="{args.slow}"]').find_elements(By.TAG_NAME, "td")[1].text != "never",
             f"{args.slow}'s last backup appears on the overview")
        wait(d, 10, lambda x: not x.find_elements(By.CSS_SELECTOR, f'#running li[data-job="{job}"]'), "the finished job leaves the running list")
        check(True, f"overview: {args.slow} backed up {row(d, args.slow).find_elements(By.TAG_NAME, 'td')[1].text}")

        pages = [("source-" + n, f"/sources/{n}") for n in expect] + [
            ("probes", "/probes"), ("drills", "/drills"), ("audit", "/audit"), ("storage", "/storage")]
        for name, path in pages:
            load(d, base + path, name)
            if name == "source-" + args.slow:
                runs = d.find_elements(By.CSS_SELECTOR, 'table.runs tr[data-outcome="ok"]')
                check(len(runs) >= 1, f"{name}: the new run is in the history ({len(runs)} ok)")
                check("daemon" in runs[0].text, f"{name}: newest run was started by the daemon ({runs[0].text!r})")
                cmd = d.find_element(By.ID, "restore-cmd").text
                check(f"restore latest --source {args.slow}" in cmd, f"{name}: restore command {cmd!r}")
            if name == "probes":
                main = d.find_element(By.TAG_NAME, "main").text
                check("cycles" in main and "3_100_000_000_000 cycles" in main, f"probes: the cycles probe's value ({main[:200]!r})")
            if name == "storage":
                check(d.find_elements(By.CSS_SELECTOR, "#rule-h"), "storage: 3-2-1 section")
            if name == "audit":
                check("append-only on" in d.find_element(By.TAG_NAME, "main").text, "audit: shows the append-only event")
            if name.startswith("source-"):
                check(len(d.find_elements(By.CSS_SELECTOR, "svg[role=img]")) >= 1 or "no data yet" in d.page_source,
                      f"{name}: charts")
            audit(d, name, args.out)
            if name == "drills":
                links = d.find_elements(By.CSS_SELECTOR, 'a[href^="/drills/"]')
                check(len(links) >= 1, "drills: a stored report is listed")
                href = links[0].get_attribute("href")
        load(d, href, "drill-report")
        sig = d.find_elements(By.CSS_SELECTOR, '[data-signature="valid"]')
        check(len(sig) == 1, "drill report: the signature is valid")
        audit(d, "drill-report", args.out)
    finally:
        d.quit()


def login_flow(args):
    base = args.url.rstrip("/")
    d = browser()
    try:
        d.get(base + "/")
        wait(d, 10, lambda x: x.current_url.endswith("/login"), "a page without a session goes to the login")
        load(d, d.current_url, "login")
        audit(d, "login", args.out)
        field = d.find_element(By.ID, "token")
        field.send_keys(os.environ["LB_BAD_TOKEN"])
        field.submit()
        wait(d, 10, lambda x: x.find_elements(By.CSS_SELECTOR, "p.alert"), "the wrong token is refused")
        alert = d.find_element(By.CSS_SELECTOR, "p.alert").text
        check("not accepted" in alert, f"login: wrong token refused ({alert!r})")
        check(d.current_url.endswith("/login"), "login: still on the login page")
        check(not d.get_cookie("lifeboat_session"), "login: no session cookie for a wrong token")
        # The refused login answers 401, which the console reports; nothing else may be there.
        logged = console_errors(d)
        check(all("status of 401" in e["message"] for e in logged), f"login: only the 401 in the console {logged}")
        audit(d, "login-refused", args.out)
        field = d.find_element(By.ID, "token")
        field.send_keys(os.environ["LB_READ_TOKEN"])
        field.submit()
        wait(d, 10, lambda x: x.find_elements(By.CSS_SELECTOR, "table.sources"), "the read-only token logs in")
        cookie = d.get_cookie("lifeboat_session")
        check(cookie is not None and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict",
              f"login: session cookie is HttpOnly, SameSite=Strict ({cookie})")
        check(os.environ["LB_READ_TOKEN"] not in json.dumps(cookie) and os.environ["LB_READ_TOKEN"] not in d.page_source,
              "login: the token is neither in the cookie nor in the page")
        check(not d.find_elements(By.CSS_SELECTOR, "button[data-action]"), "overview: read-only shows no action buttons")
        check("Read-only" in d.find_element(By.CSS_SELECTOR, ".who").text, "overview: says read-only")
        audit(d, "overview-read-only", args.out)
    finally:
        d.quit()


def report_flow(args):
    d = browser()
    try:
        load(d, args.url, "report")
        charts = d.find_elements(By.CSS_SELECTOR, "svg[role=img]")
        check(len(charts) >= 3, f"report: {len(charts)} charts drawn")
        rows = d.find_elements(By.CSS_SELECTOR, "table.sources tbody tr")
        check(len(rows) >= 1, f"report: {len(rows)} sources in the table")
        # Nothing but the file itself was loaded (no CDN, no fonts, no images from elsewhere).
        names = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        check(not names, f"report: no resources loaded {names if names else ''}")
        audit(d, "report", args.out, prefix="")
    finally:
        d.quit()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["main", "login", "report"])
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--expect", default="{}")
    p.add_argument("--slow", default="")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    {"main": main_flow, "login": login_flow, "report": report_flow}[args.mode](args)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
