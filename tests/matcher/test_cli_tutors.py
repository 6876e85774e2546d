"""`tutorwire tutors import/export` as staff run them: the real console script against the real
Redis (a prefix of its own, removed afterwards), and without Redis."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from matcher.redis_store import RedisStore
from matcher.roster import EXPORT_COLUMNS, demo_roster, roster_text
from tests.matcherkit import REDIS_URL

TUTORWIRE = os.path.join(os.path.dirname(sys.executable), "tutorwire")
HEADER = "tutor_id,name,subject,grade_bands,strengths\n"
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}


def tutorwire(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TUTORWIRE, "tutors", *args], env=BASE_ENV | (env or {}), capture_output=True,
                          encoding="utf-8", timeout=60)


async def _delete_all(prefix: str) -> None:
    store = RedisStore(REDIS_URL, prefix)
    try:
        await store.delete_all()
    finally:
        await store.close()


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    prefix = f"tw-test-cli-{secrets.token_hex(6)}:"
    try:
        yield {"TUTORWIRE_REDIS_URL": REDIS_URL, "TUTORWIRE_REDIS_PREFIX": prefix}
    finally:
        asyncio.run(_delete_all(prefix))


def exported_ids(env: dict[str, str]) -> list[str]:
    result = tutorwire("export", env=env)
    assert result.returncode == 0, result.stderr
    return [p["tutor_id"] for p in json.loads(result.stdout)]


def test_import_then_export_shows_the_tutors(redis_env: dict[str, str], tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_text(demo_roster(), "csv"))
    result = tutorwire("import", str(roster), env=redis_env)
    assert result.returncode == 0, result.stderr
    assert "imported 8 tutors" in result.stdout
    exported = json.loads(tutorwire("export", env=redis_env).stdout)
    by_id = {p["tutor_id"]: p for p in exported}
    assert sorted(by_id) == sorted(t.tutor_id for t in demo_roster())
    assert by_id["sun.hao"]["teaches"] == [{"subject": "math", "band": "junior"},
                                           {"subject": "physics", "band": "junior"},
                                           {"subject": "physics", "band": "senior"}]
    assert by_id["sun.hao"]["estimates"][0]["sessions"] == 0
    table = tmp_path / "estimates.csv"
    assert tutorwire("export", "--format", "csv", "--output", str(table), env=redis_env).returncode == 0
    lines = table.read_text().splitlines()
    assert lines[0] == ",".join(EXPORT_COLUMNS)
    assert {line.split(",")[0] for line in lines[1:]} == set(by_id)


def test_the_demo_json_and_a_gb18030_csv_from_excel_import(redis_env: dict[str, str], tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "matcher" / "demo_roster.json"
    assert tutorwire("import", str(demo), env=redis_env).returncode == 0
    excel = tmp_path / "from-excel.txt"
    excel.write_bytes((HEADER + "wang.fang,王芳,math,junior,math.algebra\n").encode("gb18030"))
    result = tutorwire("import", "--format", "csv", str(excel), env=redis_env)
    assert result.returncode == 0, result.stderr
    names = {p["tutor_id"]: p["name"] for p in json.loads(tutorwire("export", env=redis_env).stdout)}
    assert names["wang.fang"] == "王芳" and names["li.jun"] == "Li Jun"


def test_a_bad_file_imports_nothing_and_names_the_lines(redis_env: dict[str, str], tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "wang,Wang,math,junior,math.algebra\nli,Li,math,grade7,\nzhao,Zhao,math,senior,x\n")
    result = tutorwire("import", str(roster), env=redis_env)
    assert result.returncode == 1
    assert f"{roster}:3: grade band 'grade7' is not one of" in result.stderr
    assert f"{roster}:4: strength 'x' is not" in result.stderr
    assert "2 problem(s)" in result.stderr and "nothing was imported" in result.stderr
    assert result.stdout == ""
    assert exported_ids(redis_env) == []  # not even the good first row


def test_a_bad_json_entry_names_entry_and_line(redis_env: dict[str, str], tmp_path: Path) -> None:
    roster = tmp_path / "roster.json"
    roster.write_text('[\n  {"tutor_id": "wang", "name": "Wang", "teaches": []}\n]\n')
    result = tutorwire("import", str(roster), env=redis_env)
    assert result.returncode == 1
    assert f"{roster}:2: entry 1: teaches must be a non-empty array" in result.stderr


def test_without_redis_import_validates_and_says_what_it_would_do(tmp_path: Path) -> None:
    roster = tmp_path / "roster.json"
    roster.write_text(roster_text(demo_roster(), "json"))
    result = tutorwire("import", str(roster))
    assert result.returncode == 2
    assert "would import li.jun (Li Jun): math/junior, math/senior" in result.stdout
    assert len(result.stdout.splitlines()) == 8
    assert "TUTORWIRE_ROSTER_FILE" in result.stderr and "TUTORWIRE_REDIS_URL" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "wang,Wang,math,gaokao,\n")
    result = tutorwire("import", str(bad))
    assert result.returncode == 1 and f"{bad}:2:" in result.stderr


def test_without_redis_export_explains() -> None:
    result = tutorwire("export")
    assert result.returncode == 2 and "TUTORWIRE_REDIS_URL" in result.stderr and result.stdout == ""


def test_unusable_arguments_exit_2(tmp_path: Path) -> None:
    unknown = tmp_path / "roster.xlsx"
    unknown.write_text("")
    result = tutorwire("import", str(unknown))
    assert result.returncode == 2 and "pass --format csv or json" in result.stderr
    result = tutorwire("import", str(tmp_path / "missing.csv"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = tutorwire("export", env={"TUTORWIRE_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 2 and "cannot use the Redis store" in result.stderr


def test_knowledge_export_writes_the_csv(redis_env: dict[str, str], tmp_path: Path) -> None:
    from matcher.service import Matcher
    from matcher.worker import MatchWorker
    from tests.matcherkit import T0, roster, tutor

    async def one_session() -> None:
        store = RedisStore(REDIS_URL, redis_env["TUTORWIRE_REDIS_PREFIX"])
        try:
            m = Matcher(store)
            await roster(m, tutor("wang"))
            r = await m.create_request("stu1", {"subject": "math", "grade": 8,
                                                "knowledge_points": ["math.algebra.factoring"]}, T0)
            await MatchWorker(m).step(T0)
            match = await m.accept("wang", r.request_id, T0 + 1)
            await m.report_outcome(match.session_id, "stu1", 5, 1.0, T0 + 600)
        finally:
            await store.close()

    asyncio.run(one_session())
    out = tmp_path / "knowledge.csv"
    result = tutorwire("knowledge", "--output", str(out), env=redis_env)
    assert result.returncode == 0, result.stderr
    lines = out.read_text(encoding="utf-8").removeprefix("\ufeff").splitlines()
    assert lines[0].startswith("student_id,subject,knowledge_point,p_known")
    assert lines[1].startswith("stu1,math,math.algebra.factoring,")
    assert tutorwire("knowledge").returncode == 2  # no Redis configured
