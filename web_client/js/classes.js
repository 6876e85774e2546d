// Live classes (/class): a student types the class code (any case, spaces and dashes ignored) and
// goes to the class's page; everyone sees the classes they can open (GET /api/classes); a teacher
// gets the link to schedule a new one.

import { ApiError, apiGet, initChrome, requireAuth } from "./api.js";
import { errorText, formatDateTime, t } from "./i18n.js";

const auth = requireAuth("tutor", "student", "admin", "researcher");
const $ = (id) => document.getElementById(id);
let classes = [];

function render() {
  $("class-list").replaceChildren(...classes.map((c) => {
    const li = document.createElement("li");
    li.dataset.classId = c.class_id;
    const a = document.createElement("a");
    a.href = c.join_path;
    a.textContent = c.title;
    const meta = document.createElement("span");
    meta.className = "hint";
    meta.textContent = ` · ${formatDateTime(c.starts_unix)} · ${t(`class.state.${c.state}`)}`
      + (auth.role === "tutor" ? ` · ${t("class.code")} ${c.code}` : "");
    li.append(a, meta);
    return li;
  }));
  $("class-list-empty").hidden = classes.length > 0;
}

async function load() {
  try {
    classes = (await apiGet("/api/classes")).classes;
    classes.sort((a, b) => a.starts_unix - b.starts_unix);
  } catch (err) {
    $("list-error").textContent = errorText(err);
    $("list-error").hidden = false;
    return;
  }
  render();
}

$("code-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const slot = $("err-code");
  slot.hidden = true;
  const code = $("code").value.replace(/[\s-]+/g, "").toUpperCase();
  if (!code) return;
  try {
    const found = await apiGet(`/api/classes/code/${encodeURIComponent(code)}`);
    location.assign(found.join_path);
  } catch (err) {
    slot.textContent = err instanceof ApiError && err.status === 404 ? t("classes.codeUnknown") : errorText(err);
    slot.hidden = false;
    $("code").setAttribute("aria-invalid", "true");
  }
});

if (auth) {
  initChrome(auth);
  $("code-form").hidden = auth.role !== "student";
  $("new-link-line").hidden = auth.role !== "tutor";
  $("home-link").href = auth.role === "tutor" ? "/tutor" : auth.role === "student" ? "/student" : "/replay";
  window.addEventListener("tw:langchange", render);
  load();
}
