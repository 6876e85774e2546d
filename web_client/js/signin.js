// The sign-in page (index.html): dev sign-in on the embedded default. /dev/login?user=&role=
// hands out an API token (dev mode only; 404 otherwise, which the page says plainly); the token
// goes to sessionStorage and the user to their page (or back to where they came from).

import { ApiError, clearErrors, getAuth, publicJson, setAuth, showError } from "./api.js";
import { initI18n, t } from "./i18n.js";
import { sameOriginPath } from "./nav.js";
import { registerShell } from "./shell.js";

const form = document.getElementById("signin");
const user = document.getElementById("user");
const role = document.getElementById("role");
const go = document.getElementById("signin-go");
const why = document.getElementById("signin-why");
const formError = document.getElementById("signin-error");
const params = new URLSearchParams(location.search);

/** Where to go after sign-in: a path on this site from ?next=, else the role's page. */
function destination(signedRole) {
  const next = sameOriginPath(params.get("next") || "", location.origin);
  if (next !== null) return next;
  return signedRole === "tutor" ? "/tutor" : signedRole === "student" ? "/student" : "/replay";
}

function renderWhy() {
  const reason = params.get("why");
  if (!reason || !["expired", "role", "signin"].includes(reason)) {
    why.hidden = true;
    return;
  }
  const roles = (params.get("need") || "").split(",").filter(Boolean).map((r) => t(`role.${r}`)).join(" / ");
  why.textContent = t(`signin.why.${reason}`, { roles });
  why.hidden = false;
}

function renderCurrent() {
  const auth = getAuth();
  const box = document.getElementById("signin-current");
  if (!auth) {
    box.hidden = true;
    return;
  }
  document.getElementById("signin-current-text").textContent =
    t("signin.current", { user: auth.user, role: t(`role.${auth.role}`) });
  document.getElementById("signin-continue").href = destination(auth.role);
  box.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const name = user.value.trim();
  go.disabled = true;
  go.textContent = t("signin.busy");
  try {
    const query = new URLSearchParams({ user: name, role: role.value });
    const grant = await publicJson(`/dev/login?${query}`);
    setAuth({ token: grant.token, user: grant.user, role: grant.role, expires: grant.expires });
    location.assign(destination(grant.role));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      formError.textContent = t("signin.devOff");
      formError.hidden = false;
      formError.dataset.reason = "dev-login-off";
    } else {
      showError(err, formError);
    }
  } finally {
    go.disabled = false;
    go.textContent = t("signin.go");
  }
});

const wanted = (params.get("need") || "").split(",").find((r) => r === "student" || r === "tutor");
if (wanted) role.value = wanted;
initI18n();
registerShell();
renderWhy();
renderCurrent();
window.addEventListener("tw:langchange", () => {
  renderWhy();
  renderCurrent();
});
