// "New live class" (/class/new, teachers): subject, grade, title, start time, length and who may
// join; POST /api/classes, then the join link and the class code to hand to the students.
// Errors show beside their field (422 names it: #err-<field>).

import { ApiError, apiPost, clearErrors, initChrome, requireAuth, showError } from "./api.js";

const auth = requireAuth("tutor");
const $ = (id) => document.getElementById(id);
const form = $("new-class");

function localInput(date) { // a datetime-local value (local time, minutes)
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function audience() {
  const kind = form.querySelector("input[name=audience]:checked")?.value ?? "link";
  if (kind === "school") return { kind, school: $("school").value.trim() };
  if (kind === "students") {
    return { kind, students: $("students").value.split(/[\s,，、;]+/).map((s) => s.trim()).filter(Boolean) };
  }
  return { kind };
}

function renderAudience() {
  const kind = form.querySelector("input[name=audience]:checked")?.value;
  $("school-field").hidden = kind !== "school";
  $("students-field").hidden = kind !== "students";
}

form.addEventListener("change", renderAudience);
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  const start = $("start").value ? new Date($("start").value) : null;
  const body = {
    title: $("title").value.trim(), subject: $("subject").value, grade: Number($("grade").value),
    starts_unix: start && !Number.isNaN(start.getTime()) ? Math.floor(start.getTime() / 1000) : null,
    duration_min: Number($("duration").value || 45), audience: audience(),
  };
  $("new-go").disabled = true;
  try {
    const made = await apiPost("/api/classes", body);
    const link = new URL(made.join_path, location.origin).href;
    $("new-link").value = link;
    $("new-code").textContent = made.code;
    $("new-open").href = made.join_path;
    $("new-result").hidden = false;
    form.hidden = true;
  } catch (err) {
    const inputs = { starts_unix: $("start"), duration_min: $("duration") };
    // every field the server refused, beside each (the first one focused)
    const others = Object.entries(err?.errors ?? {}).filter(([field]) => field !== err.field);
    for (const [field, sentence] of others.reverse()) {
      showError(new ApiError(422, String(sentence), field), null, inputs);
    }
    showError(err, $("new-error"), inputs);
  } finally {
    $("new-go").disabled = false;
  }
});
$("new-another").addEventListener("click", () => {
  form.reset();
  $("start").value = localInput(new Date(Date.now() + 60_000));
  renderAudience();
  form.hidden = false;
  $("new-result").hidden = true;
});
$("new-link").addEventListener("focus", (e) => e.target.select());

if (auth) {
  initChrome(auth);
  $("start").value = localInput(new Date(Date.now() + 60_000));
  renderAudience();
}
