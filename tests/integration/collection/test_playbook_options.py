"""The playbooks reach every module option, and say what a failed run did.

Each module's options are read from its documentation (``ansible-doc --json``, which the sanity tests hold to the
argument spec); the real playbook then runs with a value different from the default for every one of them, set
through the options dictionaries (``pgtidy_connection_options`` and ``pgtidy_<module>_options``), and the
module's ``invocation.module_args`` must show each value. A module that gains an option is covered without a
change here. The timers role's job variables are rendered by the role itself and run as its service runs them
(``pgtidy-run``), against a cluster that accepts only TLS connections with a client certificate.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import COLLECTIONS_ROOT, ROOT, task_result
from pgserver import PgServer, free_port

BIN = os.path.dirname(sys.executable)
NO_LOG_MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

# module -> (playbook, the task that runs it, the playbook variables that pick it)
PLAYBOOKS = {
    "dagster_prune": ("prune.yml", "Prune Dagster metadata", {"pgtidy_orchestrator": "dagster"}),
    "prefect_prune": ("prune.yml", "Prune Prefect metadata", {"pgtidy_orchestrator": "prefect"}),
    "airflow_prune": ("prune.yml", "Prune Airflow metadata", {"pgtidy_orchestrator": "airflow"}),
    "repack": ("repack.yml", "Repack with pg_repack", {}),
    "health_info": ("health.yml", "Gather health facts", {}),
}


def module_options(module):
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "-t", "module", "pgtidy.maintenance." + module],
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["pgtidy.maintenance." + module]["doc"]["options"]


def common_option_names():
    """The options every module takes: the ones pgtidy_connection_options is for."""
    names = None
    for module in PLAYBOOKS:
        found = set(module_options(module))
        names = found if names is None else names & found
    return names


def value_unlike_default(name, spec, tmp_path):
    """A value of the option's type that differs from its default, so that seeing it proves it was passed."""
    default = spec.get("default")
    kind = spec.get("type", "str")
    if spec.get("choices"):
        return next(c for c in spec["choices"] if c != default)
    if kind == "bool":
        return not default
    if kind == "int":
        return (default or 0) + 7
    if kind == "float":
        return (default or 0.0) + 0.25
    if kind == "path":
        return str(tmp_path / ("opt-" + name))
    if kind == "dict":
        return {"pgtidy_test_" + name: 1}
    if kind == "list":
        return [3] if spec.get("elements") == "int" else ["pgtidy_test_" + name]
    return "pgtidy-test-" + name


# Values the generic ones above would make the module refuse before it looks at the database; any other option,
# and any option a module gains later, gets the generic value.
def reachable_values(pg, db, tmp_path):
    return {
        "login_host": "127.0.0.1", "login_port": pg.port, "login_user": "postgres",
        "login_password": "not-needed-with-trust", "login_unix_socket": pg.sock, "login_db": db,
        "ssl_mode": "disable", "connect_params": {"target_session_attrs": "any"}, "session_role": "postgres",
        "lock_file": str(tmp_path / "pgtidy.lock"), "lock_timeout": "4s", "statement_timeout": "50s",
    }


def run_playbook(ansible, playbook, extra_vars, check=False):
    return ansible.run_playbook(os.path.join(ROOT, "playbooks", playbook), extra_vars=extra_vars, check=check)


def recap(stdout):
    return json.loads(stdout[stdout.index("{"):])["stats"]["localhost"]


@pytest.mark.parametrize("module", sorted(PLAYBOOKS))
def test_every_module_option_reaches_the_module_through_the_options_variables(module, pg, fresh_db, ansible, tmp_path):
    playbook, task, picker = PLAYBOOKS[module]
    options = module_options(module)
    common = common_option_names()
    reachable = reachable_values(pg, fresh_db, tmp_path)
    wanted = {name: reachable.get(name, value_unlike_default(name, spec, tmp_path))
              for name, spec in options.items()}
    extra = dict(picker)
    extra["pgtidy_connection_options"] = {k: v for k, v in wanted.items() if k in common}
    extra["pgtidy_%s_options" % module] = {k: v for k, v in wanted.items() if k not in common}

    # Check mode; whether the module then succeeds does not matter here (an empty database is no Dagster
    # schema): what it was called with does.
    proc = run_playbook(ansible, playbook, extra, check=True)
    result = task_result(proc.stdout, task)
    assert "invocation" in result, proc.stdout[-3000:] + proc.stderr
    received = result["invocation"]["module_args"]
    not_passed = {}
    for name, value in wanted.items():
        got = received.get(name)
        if got == NO_LOG_MASK:   # a no_log option (the password): passed, and not shown
            continue
        if got != value:
            not_passed[name] = (value, got)
    assert not not_passed, "options the playbook %s did not pass to %s (wanted, received): %s" % (
        playbook, module, not_passed)


def test_named_variables_win_over_the_module_dict_which_wins_over_the_connection_dict(pg, fresh_db, ansible, tmp_path):
    extra = {
        "pgtidy_connection_options": {"login_host": "127.0.0.1", "login_port": pg.port, "login_db": "no_such_db",
                                      "ssl_mode": "disable", "lock_timeout": "3s", "statement_timeout": "30s"},
        "pgtidy_dagster_prune_options": {"lock_timeout": "2s", "batch_size": 77, "max_wal_rate": "4MB",
                                         "lock_file": str(tmp_path / "from-dict.lock")},
        "pgtidy_login_db": fresh_db, "pgtidy_batch_size": 88, "pgtidy_lock_file": str(tmp_path / "named.lock"),
    }
    proc = run_playbook(ansible, "prune.yml", extra, check=True)
    received = task_result(proc.stdout, "Prune Dagster metadata")["invocation"]["module_args"]
    assert received["login_db"] == fresh_db and received["login_port"] == pg.port
    assert received["lock_timeout"] == "2s" and received["statement_timeout"] == "30s"
    assert received["batch_size"] == 88 and received["max_wal_rate"] == "4MB"
    assert received["lock_file"] == str(tmp_path / "named.lock")

    # The other playbooks merge the same way, and keep their own defaults under the dictionaries.
    repack_options = {"estimate_method": "statistics", "no_superuser_check": True}
    proc = run_playbook(ansible, "repack.yml", dict(extra, pgtidy_repack_options=repack_options), check=True)
    received = task_result(proc.stdout, "Repack with pg_repack")["invocation"]["module_args"]
    assert received["estimate_method"] == "statistics" and received["no_superuser_check"] is True
    assert received["auto"] is True and received["login_db"] == fresh_db and received["lock_timeout"] == "3s"
    unnamed = {k: v for k, v in extra.items() if k != "pgtidy_login_db"}
    proc = run_playbook(ansible, "repack.yml", dict(unnamed, pgtidy_repack_options={"tables": ["nothing_here"]}),
                        check=True)
    received = task_result(proc.stdout, "Repack with pg_repack")["invocation"]["module_args"]
    assert received["auto"] is False and received["login_db"] == "no_such_db"
    proc = run_playbook(ansible, "health.yml", dict(extra, pgtidy_health_info_options={"history_days": 9}),
                        check=True)
    received = task_result(proc.stdout, "Gather health facts")["invocation"]["module_args"]
    assert received["history_days"] == 9 and received["login_db"] == fresh_db


def test_a_failed_prune_without_handlers_shows_its_summary_and_fails_the_play(pg, ansible, tmp_path):
    closed_port = free_port()   # nothing listens there
    extra = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": closed_port, "pgtidy_login_db": "dagster",
             "pgtidy_ssl_mode": "disable", "pgtidy_lock_file": str(tmp_path / "pgtidy.lock")}
    proc = run_playbook(ansible, "prune.yml", extra)
    assert proc.returncode != 0
    assert recap(proc.stdout)["failures"] == 1
    pruned = task_result(proc.stdout, "Prune Dagster metadata")
    assert pruned["failed"] is True and pruned["error_kind"] == "connection_failed"
    lines = task_result(proc.stdout, "Show what was pruned")["msg"]
    assert lines[0] == "Nothing was pruned."
    assert "FAILED (connection_failed): %s" % pruned["msg"] in "\n".join(lines), lines


@pytest.mark.parametrize("playbook,task", [("repack.yml", "Repack with pg_repack"),
                                           ("health.yml", "Gather health facts")])
def test_a_failed_repack_or_health_run_still_shows_its_summary_and_fails_the_play(playbook, task, ansible, tmp_path):
    extra = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": free_port(), "pgtidy_login_db": "dagster",
             "pgtidy_ssl_mode": "disable", "pgtidy_lock_file": str(tmp_path / "pgtidy.lock")}
    proc = run_playbook(ansible, playbook, extra)
    assert proc.returncode != 0
    assert recap(proc.stdout)["failures"] == 1
    failed = task_result(proc.stdout, task)
    assert failed["failed"] is True and failed["error_kind"], failed
    summary = task_result(proc.stdout, "Summary")["msg"]
    text = summary if isinstance(summary, str) else "\n".join(summary)
    assert "FAILED (%s): " % failed["error_kind"] in text, summary
    if playbook == "health.yml":   # the health summary says the server is down, then why the run failed
        assert failed["summary_lines"] and summary[:len(failed["summary_lines"])] == failed["summary_lines"]


def _grant_all_but(pg, db, role, table, privileges):
    pg.psql("CREATE ROLE %s LOGIN" % role, db=db)
    pg.psql("GRANT SELECT, DELETE, UPDATE ON ALL TABLES IN SCHEMA public TO %s" % role, db=db)
    pg.psql("REVOKE %s ON %s FROM %s" % (privileges, table, role), db=db)


def test_a_failed_prune_with_handlers_shows_what_they_did_and_why_it_failed(pg, dagster_db, ansible, tmp_path):
    """The event_logs handlers fail (no DELETE there), the tick handlers delete: both show, then the failure."""
    role = "pruner_" + uuid.uuid4().hex[:8]
    _grant_all_but(pg, dagster_db["db"], role, "event_logs", "DELETE")
    try:
        extra = {"pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port, "pgtidy_login_user": role,
                 "pgtidy_login_db": dagster_db["db"], "pgtidy_ssl_mode": "disable",
                 "pgtidy_lock_file": str(tmp_path / "pgtidy.lock"),
                 "pgtidy_dagster_run_retention_days": {"success": 90, "failure": 90, "canceled": 90}}
        proc = run_playbook(ansible, "prune.yml", extra)
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert recap(proc.stdout)["failures"] == 1
        pruned = task_result(proc.stdout, "Prune Dagster metadata")
        assert pruned["failed"] is True and pruned["handlers"], pruned
        failed = sorted(name for name, h in pruned["handlers"].items() if h.get("status") == "failed")
        assert failed, pruned["handlers"]
        lines = task_result(proc.stdout, "Show what was pruned")["msg"]
        assert lines[0].startswith("Deleted %d rows from %s.public" % (pruned["deleted_total"], dagster_db["db"]))
        for name in failed:
            assert any(line.startswith(name + " ") and "FAILED: " in line for line in lines), (name, lines)
        assert any(line.startswith("event_logs ") and " rows " in line for line in lines), lines
        deleted = sorted(name for name, h in pruned["handlers"].items() if h.get("deleted"))
        assert deleted and not set(deleted) & set(failed), pruned["handlers"]
        assert "FAILED (%s): %s" % (pruned["error_kind"], pruned["msg"]) in "\n".join(lines), lines
    finally:
        pg.psql("DROP OWNED BY %s; DROP ROLE %s" % (role, role), db=dagster_db["db"])


# ---------------------------------------------------------------------------------------------------------------
# The timers role: a pacing option and the client certificate, set through timers_prune_vars.

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def _certificates(directory):
    """A CA, a server certificate and a client certificate for the role postgres, made with openssl."""
    os.makedirs(directory, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pgtidy test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)
    for name, cn in (("server", "127.0.0.1"), ("client", "postgres")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn, "-keyout", name + ".key",
                 "-out", name + ".csr", cwd=directory)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", name + ".crt", cwd=directory)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o600)
    return {name: os.path.join(directory, name) for name in os.listdir(directory)}


@pytest.fixture
def cert_only_cluster(pg, dagster_template, tmp_path):
    """A second cluster that takes TCP connections only over TLS with a client certificate signed by its CA,
    holding a copy of the session's Dagster database."""
    server = PgServer()
    server._prepare_base()
    tls = os.path.join(server.base, "tls")
    files = _certificates(tls)
    server._chown(tls)
    client = tmp_path / "client"
    client.mkdir()
    for name in ("client.crt", "client.key"):   # the client's copies, the user's own, mode 0600
        with open(files[name], "rb") as fh:
            (client / name).write_bytes(fh.read())
        os.chmod(client / name, 0o600)
    server.settings = {"fsync": "off", "ssl": "on", "ssl_cert_file": files["server.crt"],
                       "ssl_key_file": files["server.key"], "ssl_ca_file": files["ca.crt"]}
    server.start()
    try:
        with open(os.path.join(server.data, "pg_hba.conf"), "w") as fh:
            fh.write("local all all trust\nhostssl all all 127.0.0.1/32 cert\n")
        local = [os.path.join(server.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.sock,
                 "-p", str(server.port), "-U", "postgres"]
        subprocess.run(local + ["-d", "postgres", "-c", "SELECT pg_reload_conf()"], check=True, capture_output=True)
        subprocess.run(local + ["-d", "postgres", "-c", "CREATE DATABASE dagster"], check=True, capture_output=True)
        dump = subprocess.run([os.path.join(pg.bindir, "pg_dump"), "-h", "127.0.0.1", "-p", str(pg.port),
                               "-U", "postgres", "--no-owner", dagster_template["db"]],
                              check=True, capture_output=True, text=True)
        subprocess.run(local + ["-d", "dagster"], input=dump.stdout, check=True, capture_output=True, text=True)
        # Without a client certificate the server refuses the connection.
        refused = subprocess.run([os.path.join(server.bindir, "psql"), "-X", "-At", "-c", "SELECT 1",
                                  "host=127.0.0.1 port=%d user=postgres dbname=dagster sslmode=require" % server.port],
                                 capture_output=True, text=True, check=False)
        assert refused.returncode != 0, refused.stdout
        yield {"server": server, "client_cert": str(client / "client.crt"), "client_key": str(client / "client.key"),
               "local": local}
    finally:
        server.stop()


def _render_job_vars(tmp_path, role_vars):
    """The role's own tasks write /etc/pgtidy/JOB.yml and secrets.yml, here into a scratch directory."""
    etc = tmp_path / "etc"
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "Write the job configuration as the role does",
        "ansible.builtin.include_role": {"name": "pgtidy.maintenance.timers", "tasks_from": "config.yml"}}]}]
    (tmp_path / "role.json").write_text(json.dumps(play))
    values = dict(role_vars, timers_config_dir=str(etc), timers_user="root", timers_group="root",
                  timers_lock_file=str(tmp_path / "lock" / "pgtidy.lock"),
                  _timers_tmpfiles=str(tmp_path / "tmpfiles-pgtidy.conf"))
    (tmp_path / "role-vars.json").write_text(json.dumps(values))
    etc.mkdir()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           str(tmp_path / "role.json"), "-e", "@" + str(tmp_path / "role-vars.json")],
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT,
                                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_PYTHON_INTERPRETER=sys.executable))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return etc


@pytest.mark.skipif(os.geteuid() != 0, reason="the role's files are owned by root")
def test_timers_prune_vars_set_pacing_and_the_client_certificate(cert_only_cluster, tmp_path):
    server = cert_only_cluster["server"]
    etc = _render_job_vars(tmp_path, {
        "timers_connection": {"login_host": "127.0.0.1", "login_port": server.port, "login_user": "postgres",
                              "login_db": "dagster", "ssl_mode": "require"},
        "timers_login_password": "not-needed-with-certificates",
        "timers_prune_vars": {
            "pgtidy_orchestrator": "dagster",
            "pgtidy_connection_options": {"ssl_cert": cert_only_cluster["client_cert"],
                                          "ssl_key": cert_only_cluster["client_key"]},
            "pgtidy_dagster_prune_options": {"max_wal_rate": "2MB", "max_lag_wait": 30},
        },
    })
    work = tmp_path / "run"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "roles", "timers", "files", "pgtidy-run"), "prune",
         "--playbook", "pgtidy.maintenance.prune", "--vars", str(etc / "prune.yml"), "--vars", str(etc / "secrets.yml"),
         "--report", str(work / "prune.json"), "--metrics", str(work / "prune.prom"),
         "--job-report", str(work / "prune.run.json"), "--job-metrics", str(work / "prune.run.prom"),
         "--lock-file", str(work / "pgtidy.lock"), "--lock-wait", "5"],
        capture_output=True, text=True, cwd=str(work), check=False,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_LOCALHOST_WARNING="false"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert json.loads((work / "prune.run.json").read_text())["status"] == "ok"
    report = json.loads((work / "prune.json").read_text())
    assert report["deleted_total"] > 0 and report["database"] == "dagster"
    assert "Deleted %d rows from dagster.public" % report["deleted_total"] in proc.stdout   # the summary
    limits = report["pacing"]["limits"]
    assert limits["max_wal_rate"] == 2 * 1000 * 1000 and limits["max_lag_wait"] == 30
    count = ["-d", "dagster", "-At", "-c", "SELECT count(*) FROM event_logs"]
    left = subprocess.run(cert_only_cluster["local"] + count, check=True, capture_output=True,
                          text=True).stdout.strip()
    assert report["rows_after"]["event_logs"] == int(left)
