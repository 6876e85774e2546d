// "Use my writing pad": the tutor's session page asks the server for a short pairing code with
// the page's own join token (POST /api/pairing), and shows it with the command to type on the PC
// (tutorwire pen-gateway --server ... --pair CODE). The code is single-use and short-lived; pressing
// the button again gives a new one (the old one stops working). docs/pen-gateway.md.

import { t } from "./i18n.js";

/** Wire `button` to show a pairing code in `out`. `getJoin()` is the session's current join
 * ({session_id, token}); `refreshToken()` gets a fresh token when the page's has expired. */
export function mountPadPairing(button, out, getJoin, refreshToken = null) {
  async function ask(token, sessionId) {
    return fetch("/api/pairing", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ session: sessionId }),
    });
  }

  button.addEventListener("click", async () => {
    const join = getJoin();
    if (!join) return;
    button.disabled = true;
    try {
      let res = await ask(join.token, join.session_id);
      if (res.status === 401 && refreshToken) res = await ask(await refreshToken(), join.session_id);
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      const minutes = Math.max(1, Math.round(body.expires_in_s / 60));
      out.replaceChildren();
      const code = document.createElement("strong");
      code.className = "pad-code";
      code.textContent = body.code;
      const cmd = document.createElement("code");
      cmd.textContent = `tutorwire pen-gateway --server ${location.origin} --pair ${body.code}`;
      out.append(t("pad.code"), code, t("pad.how", { minutes }), cmd);
      out.dataset.state = "code";
    } catch (err) {
      out.textContent = t("pad.failed", { error: err.message || err });
      out.dataset.state = "error";
    } finally {
      out.hidden = false;
      button.disabled = false;
    }
  });
}
