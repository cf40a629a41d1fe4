// Berth console: copy buttons, and polling a broker's state while it is in transition.
// Everything works without it (forms post, pages refresh by <noscript> meta refresh).

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const target = document.getElementById(button.dataset.copy);
    if (!target) return;
    try {
      await navigator.clipboard.writeText(target.textContent);
      button.dataset.copied = "true";
      const label = button.firstChild;
      const before = label.textContent;
      label.textContent = "Copied ";
      setTimeout(() => { label.textContent = before; }, 1500);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(target);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
  });
}

const poll = document.querySelector("[data-poll]");
if (poll) {
  const url = poll.dataset.poll;
  const initial = poll.dataset.state;
  const tick = async () => {
    try {
      const resp = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (resp.status === 404 || resp.redirected) { window.location.assign("/console/brokers"); return; }
      if (resp.ok) {
        const body = await resp.json();
        if (body.state !== initial) { window.location.reload(); return; }
      }
    } catch { /* try again */ }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}
