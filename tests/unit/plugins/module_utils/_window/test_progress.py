"""Waiting for a window's background call: the host-side question (run here by a real shell on real
files), its answer read back, and the progress lines."""

import json
import os
import subprocess
import threading
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._window import protocol
from ansible_collections.stacklift.migrate.plugins.module_utils._window import progress


def ask(tmp_path, wait=0.3):
    cmd = protocol.poll_command(str(tmp_path / "job"), str(tmp_path / "shop.journal"), str(tmp_path), wait=wait)
    res = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, check=True)
    return protocol.parse_poll(res.stdout)


def test_a_running_call_answers_after_the_wait_with_its_marker_and_part_files(tmp_path):
    (tmp_path / "job").write_text(json.dumps({"started": True, "finished": False, "ansible_job_id": "j1"}))
    now = time.time()
    (tmp_path / "shop.journal").write_text("\n".join(json.dumps(r) for r in [
        {"run": "r0", "service": "db", "step": "ready", "t": now - 100},
        {"run": "r1", "service": "db", "step": "restored", "t": now - 3},
        {"run": "r1", "service": "db", "step": "ready", "t": now - 2},
        {"run": "r1", "service": "cache", "step": "restored", "t": now - 2}]) + "\n{torn")
    (tmp_path / ".shop-app.tar.zst.part-1a2b3c4d").write_bytes(b"x" * 3000000)
    (tmp_path / "shop-web.tar.zst").write_bytes(b"x" * 10)
    start = time.time()
    call, records, parts, host_now = ask(tmp_path)
    assert 0.25 < time.time() - start < 3 and abs(host_now - time.time()) < 1
    assert call is None and (tmp_path / "job").exists()
    assert len(records) == 4 and parts == {".shop-app.tar.zst.part-1a2b3c4d": 3000000, "shop-web.tar.zst": 10}
    services = [{"name": "db", "container": "shop-db"}, {"name": "cache", "container": "shop-cache"},
                {"name": "app", "container": "shop-app"}, {"name": "web", "container": "shop-web"},
                {"name": "api", "container": "shop-api"}]
    states = progress.service_states("target", services, records, "r1", parts, now + 0.5)
    assert states == {"db": ("ready", None), "cache": ("restored, probing for 2.5 s", None),
                      "app": ("receiving", 3000000), "web": ("arrived, restoring", None), "api": ("waiting", None)}
    last = {}
    line = progress.progress_line("shop", "node2", "target", 4.0, states, last)
    assert line == ("shop on node2 (target), 4.0 s: api waiting; app receiving 3.0 MB; cache restored, probing for "
                    "2.5 s; db ready; web arrived, restoring")
    states["app"] = ("receiving", 5000000)
    assert "app receiving 5.0 MB, 1.0 MB/s" in progress.progress_line("shop", "node2", "target", 6.0, states, last)


def test_an_ended_call_answers_at_once_with_its_result(tmp_path):
    (tmp_path / "job").write_text(json.dumps({"started": 1, "finished": 0, "ansible_job_id": "j1"}))

    def end():
        time.sleep(0.3)
        (tmp_path / "job.tmp").write_text(json.dumps({"changed": True, "events": [{"step": "ready"}]}))
        (tmp_path / "job.tmp").rename(tmp_path / "job")
    threading.Thread(target=end).start()
    start = time.time()
    call, _records, parts, _now = ask(tmp_path, wait=5)
    assert time.time() - start < 1.5, "the end is seen within a poll step, not after the whole wait"
    assert call == {"changed": True, "events": [{"step": "ready"}]} and parts == {}
    # asked again (a rollback waits for the same call), the same answer
    assert ask(tmp_path)[0] == call
    (tmp_path / "job").unlink()
    start = time.time()
    call = ask(tmp_path, wait=5)[0]
    assert time.time() - start < 1.5 and call["failed"] and "is not on the host" in call["msg"]


def test_the_sources_words_and_a_call_that_printed_no_json(tmp_path):
    records = [{"run": "r1", "service": "db", "step": "fenced", "t": 10.0},
               {"run": "r1", "service": "db", "step": "checkpointed", "t": 11.0},
               {"run": "r1", "service": "app", "step": "fenced", "t": 10.0}]
    states = progress.service_states("source", [{"name": "db"}, {"name": "app"}, {"name": "cache"}], records, None, {},
                                     12.5)
    assert states == {"db": ("checkpointed, sending for 1.5 s", None), "app": ("fenced, checkpointing for 2.5 s", None),
                      "cache": ("waiting", None)}
    # without the host's clock, no seconds
    assert progress.service_states("source", [{"name": "db"}], records, "r1", {})["db"][0] == "checkpointed, sending"
    out = "%s\nTraceback (most recent call last)\n%s\n%s\n%s\n" % protocol.SECTIONS
    call, records, parts, now = protocol.parse_poll(out)
    assert call["failed"] and "not JSON" in call["msg"] and "Traceback" in call["module_stdout"]


def test_waiting_on_the_host_itself(tmp_path):
    job = tmp_path / "job"
    job.write_text(json.dumps({"started": True, "finished": False}))
    ticks = iter(range(100))
    assert progress.local_wait(str(job), 3, lambda s: None, lambda: next(ticks)) is None
    job.write_text(json.dumps({"failed": True, "msg": "no"}))
    assert progress.local_wait(str(job), 3, lambda s: None, time.time) == {"failed": True, "msg": "no"}


def test_a_wait_for_ready_ends_at_the_targets_note_of_its_run_and_reads_the_steps_as_events(tmp_path):
    # The target's call, ready, leaves its note and goes on waiting for the commit: the question
    # ends then (a note of another run does not end it), and the marker's records are the events.
    (tmp_path / "job").write_text(json.dumps({"started": True, "finished": False, "ansible_job_id": "j1"}))
    note = str(tmp_path / "shop.ready")
    protocol.write_note(str(tmp_path), "shop", "ready", "r0")
    start = time.time()
    cmd = protocol.poll_command(str(tmp_path / "job"), str(tmp_path / "shop.journal"), str(tmp_path), wait=0.3,
                                until_note=(note, "r1"))
    subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert time.time() - start > 0.25, "an older run's note is not this run's"

    def ready():
        time.sleep(0.3)
        protocol.write_note(str(tmp_path), "shop", "ready", "r1")
    threading.Thread(target=ready).start()
    start = time.time()
    cmd = protocol.poll_command(str(tmp_path / "job"), str(tmp_path / "shop.journal"), str(tmp_path), wait=5,
                                until_note=(note, "r1"))
    subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert 0.25 < time.time() - start < 1.5
    services = [{"name": "db", "container": "shop-db"}, {"name": "app", "container": "shop-app"}]
    records = [{"run": "r1", "service": "db", "step": "restored", "t": 1.0},
               {"run": "r1", "service": "db", "step": "ready", "t": 2.0},
               {"run": "r1", "service": "app", "step": "restored", "t": 2.5},
               {"run": "r0", "service": "app", "step": "ready", "t": 0.5}]
    assert progress.stage_events(services, records, "r1") is None  # app is not ready in this run
    records.append({"run": "r1", "service": "app", "step": "ready", "t": 3.0})
    assert [(r["service"], r["step"]) for r in progress.stage_events(services, records, "r1")] == [
        ("db", "restored"), ("db", "ready"), ("app", "restored"), ("app", "ready")]
    # the commit's wait ends once each serves (its call goes on while lazy memory fills)
    assert progress.stage_events(services, records, "r1", "committed") is None
    records += [{"run": "r1", "service": n, "step": "committed", "t": 4.0} for n in ("db", "app")]
    assert [r["step"] for r in progress.stage_events(services, records, "r1", "committed")][-2:] == ["committed"] * 2


def test_the_commit_note_is_written_whole_by_one_shell_command(tmp_path):
    path = str(tmp_path / "ck" / "shop.commit")
    subprocess.run(["/bin/sh", "-c", protocol.note_command(path, protocol.note_body("r1"))], check=True)
    assert protocol.read_note(str(tmp_path / "ck"), "shop", "commit", "r1") == ""
    assert protocol.read_note(str(tmp_path / "ck"), "shop", "commit", "r2") is None
    assert not os.path.exists(path + ".tmp")
