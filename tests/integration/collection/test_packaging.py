"""The collection as its users get it: the built tarball installed into an empty collections path with
ansible-core alone plus the collections the install pulls in, then playbooks, docs and roles run from there;
the execution environment that ansible-builder renders for it; the changelog; ansible-lint over the tree."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile

import pytest
import yaml

from conftest import ROOT

# One worker builds and installs the artifacts once for every test here.
pytestmark = pytest.mark.xdist_group("packaging")

BIN = os.path.dirname(sys.executable)
# Galaxy is not reachable from the tests: the dependencies come from the copies the ``ansible`` package carries.
SITE_COLLECTIONS = os.path.join(sysconfig.get_paths()["purelib"], "ansible_collections")
PATH_WARNING = "is not part of the configured Ansible collections paths"


def run(cmd, env=None, cwd=None, check=True, stdout_only=False):
    """(returncode, output). The output is stdout and stderr together, for messages; ``stdout_only`` returns
    stdout alone, for output that is parsed (a warning on stderr must not break a JSON parse)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd or ROOT, check=False)
    output = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, "%s failed (%d):\n%s" % (" ".join(map(str, cmd)), proc.returncode, output[-4000:])
    return proc.returncode, proc.stdout if stdout_only else output


def galaxy_yml():
    with open(os.path.join(ROOT, "galaxy.yml")) as fh:
        return yaml.safe_load(fh)


def ansible(tool):
    return os.path.join(BIN, tool)


class Controller:
    """A controller configured the way the README says: ansible.cfg names the collections path, nothing else
    is visible (the ``ansible`` package's collections on sys.path are switched off)."""

    def __init__(self, base):
        self.base = base
        self.collections = os.path.join(base, "collections")
        self.config = os.path.join(base, "ansible.cfg")
        os.makedirs(self.collections)
        os.makedirs(os.path.join(base, "home"))
        with open(self.config, "w") as fh:
            fh.write("[defaults]\ncollections_path = %s\n" % self.collections)

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update({
            "HOME": os.path.join(self.base, "home"),
            "ANSIBLE_CONFIG": self.config,
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
        })
        return env

    def install(self, *artifacts, extra=(), check=True):
        return run([ansible("ansible-galaxy"), "collection", "install", "--offline", *extra, *artifacts],
                   env=self.env(), cwd=self.base, check=check)

    def playbook(self, *args, check=True):
        return run([ansible("ansible-playbook"), "-i", "localhost,", "-c", "local", *args],
                   env=self.env(), cwd=self.base, check=check)

    def write_play(self, name, play):
        path = os.path.join(self.base, name)
        with open(path, "w") as fh:
            yaml.safe_dump(play, fh, sort_keys=False)
        return path


def rebuild_artifact(namespace, name, work, out):
    """A collection artifact of the ``ansible`` package's installed copy. That copy's FILES.json lists files
    the package left out, so it is rebuilt from a galaxy.yml made of its MANIFEST.json."""
    src = os.path.join(SITE_COLLECTIONS, namespace, name)
    with open(os.path.join(src, "MANIFEST.json")) as fh:
        info = json.load(fh)["collection_info"]
    dst = os.path.join(work, namespace, name)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "MANIFEST.json", "FILES.json"))
    galaxy = {key: info[key] for key in ("namespace", "name", "version", "readme", "authors", "description",
                                         "license", "tags", "dependencies", "repository") if info.get(key)}
    if not os.path.exists(os.path.join(dst, galaxy["readme"])):
        with open(os.path.join(dst, galaxy["readme"]), "w") as fh:
            fh.write("%s.%s\n" % (namespace, name))
    with open(os.path.join(dst, "galaxy.yml"), "w") as fh:
        yaml.safe_dump(galaxy, fh)
    run([ansible("ansible-galaxy"), "collection", "build", "--output-path", out, dst])
    return os.path.join(out, "%s-%s-%s.tar.gz" % (namespace, name, info["version"])), info


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """The collection's tarball (``make build``) and the tarballs of its dependencies, transitively."""
    dist = str(tmp_path_factory.mktemp("dist"))
    run([ansible("ansible-galaxy"), "collection", "build", "--output-path", dist, ROOT])
    tarball = os.path.join(dist, "pgtidy-maintenance-%s.tar.gz" % galaxy_yml()["version"])
    assert os.path.exists(tarball), os.listdir(dist)

    work = str(tmp_path_factory.mktemp("dependency-sources"))
    deps, todo = {}, list(galaxy_yml()["dependencies"])
    while todo:
        fqcn = todo.pop()
        if fqcn in deps:
            continue
        path, info = rebuild_artifact(*fqcn.split("."), work, dist)
        deps[fqcn] = {"path": path, "version": info["version"]}
        todo.extend(info.get("dependencies") or {})
    return {"tarball": tarball, "deps": deps}


@pytest.fixture(scope="module")
def controller(artifacts, tmp_path_factory):
    """The tarball and its dependencies installed into an empty, configured collections path."""
    ctl = Controller(str(tmp_path_factory.mktemp("controller")))
    unused, output = ctl.install(artifacts["tarball"], *[d["path"] for d in artifacts["deps"].values()])
    ctl.install_output = output
    return ctl


def role_task_files(collection_dir):
    return sorted(glob.glob(os.path.join(collection_dir, "roles", "*", "tasks", "*.yml")))


def import_every_task_file_play(collection_dir):
    """One play that statically imports every task file of every role, so that --syntax-check resolves
    each module and action they name (the roles themselves include most files dynamically)."""
    tasks = []
    for path in role_task_files(collection_dir):
        role, name = path.split(os.sep)[-3], os.path.basename(path)[:-4]
        tasks.append({"name": "Import %s %s" % (role, name),
                      "ansible.builtin.import_role": {"name": "pgtidy.maintenance." + role, "tasks_from": name}})
    return [{"name": "Every role task file", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]


def test_tarball_ships_what_users_use_and_declares_the_dependencies(artifacts):
    with tarfile.open(artifacts["tarball"]) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        task_texts = {n: tar.extractfile(n).read().decode() for n in names
                      if re.match(r"(roles/[^/]+/(tasks|handlers)/|playbooks/)[^/]+\.yml$", n)}
    top = {n.split("/")[0] for n in names}
    assert {"plugins", "roles", "playbooks", "meta", "docs", "tests", "changelogs", "README.md", "CHANGELOG.rst",
            "bindep.txt", "MANIFEST.json", "FILES.json"} <= top, sorted(top)
    assert not top & {"bench", "demo", "molecule", "scripts", "locks", "Makefile", "pytest.ini", "requirements-test.txt",
                      ".gitignore", ".ci", "build"}, sorted(top)
    assert {"meta/runtime.yml", "meta/execution-environment.yml", "meta/ee-requirements.txt",
            "changelogs/changelog.yaml"} <= set(names)
    assert manifest["dependencies"] == galaxy_yml()["dependencies"]

    # Every collection a role or playbook calls is either this one, ansible.builtin or a declared dependency.
    used = set()
    for text in task_texts.values():
        used |= {m.group(1) for m in re.finditer(r"^\s+(?:- )?([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+:", text, re.M)}
    assert used, "no fully qualified task found"
    assert used - {"ansible.builtin", "pgtidy.maintenance"} <= set(manifest["dependencies"]), used
    assert {"community.docker", "containers.podman"} <= used


def test_the_tarball_alone_does_not_resolve_the_role(artifacts, tmp_path):
    """Without the dependencies the install refuses (they are declared); forced, the role cannot resolve."""
    ctl = Controller(str(tmp_path / "bare"))
    rc, output = ctl.install(artifacts["tarball"], check=False)
    assert rc != 0
    assert "community.docker" in output or "containers.podman" in output, output[-2000:]

    # -p with a directory Ansible does not search: installed, with the warning the README explains.
    unused, output = ctl.install(artifacts["tarball"], extra=("--no-deps", "-p", str(tmp_path / "elsewhere")))
    assert PATH_WARNING in " ".join(output.split()), output
    ctl.install(artifacts["tarball"], extra=("--no-deps",))
    play = ctl.write_play("roles.yml", import_every_task_file_play(
        os.path.join(ctl.collections, "ansible_collections", "pgtidy", "maintenance")))
    rc, output = ctl.playbook("--syntax-check", play, check=False)
    assert rc != 0
    assert re.search(r"couldn't resolve module/action '(community\.docker|containers\.podman)\.", output), \
        output[-2000:]


def test_install_puts_exactly_the_collection_and_its_dependencies_on_the_configured_path(artifacts, controller):
    assert PATH_WARNING not in controller.install_output
    unused, output = run([ansible("ansible-galaxy"), "collection", "list", "--format", "json"], env=controller.env(),
                         cwd=controller.base, stdout_only=True)
    listing = json.loads(output)
    installed = listing.pop(os.path.join(controller.collections, "ansible_collections"))
    # What remains is ansible-core's own internal collections, nothing from any other place.
    assert all(os.sep + "ansible" + os.sep + "_internal" + os.sep in path for path in listing), listing
    assert set(installed) == {"pgtidy.maintenance"} | set(artifacts["deps"])

    from ansible.galaxy.dependency_resolution.versioning import meets_requirements
    for fqcn, requirement in galaxy_yml()["dependencies"].items():
        version = installed[fqcn]["version"]
        assert meets_requirements(version, requirement), (fqcn, version, requirement)


def test_playbooks_run_from_the_installed_collection(controller, pg, fresh_db, tmp_path):
    out = str(tmp_path / "results.json")
    play = controller.write_play("run.yml", [{
        "name": "pgtidy from the installed tarball",
        "hosts": "localhost",
        "gather_facts": False,
        # The action group of meta/runtime.yml: the connection is set once.
        "module_defaults": {"group/pgtidy.maintenance.all": {
            "login_host": "127.0.0.1", "login_port": pg.port, "login_user": "postgres",
            "login_db": fresh_db, "ssl_mode": "disable"}},
        "tasks": [
            {"name": "Health", "pgtidy.maintenance.health_info": {}, "register": "health"},
            {"name": "Prune in check mode", "pgtidy.maintenance.dagster_prune": {
                "lock_file": str(tmp_path / "pgtidy.lock")},
             "check_mode": True, "register": "prune", "ignore_errors": True},
            {"name": "Save the results", "ansible.builtin.copy": {
                "content": "{{ {'health': health, 'prune': prune} | to_json }}", "dest": out, "mode": "0600"}},
        ],
    }])
    controller.playbook(play)
    with open(out) as fh:
        results = json.load(fh)
    assert results["health"]["available"] is True, results["health"]
    assert results["health"]["failed"] is False
    # The prune module ran its whole core from the installed tree: an empty database is not a Dagster schema.
    assert results["prune"]["failed"] is True and results["prune"]["error_kind"] == "schema_mismatch", \
        results["prune"]

    # The collection's own playbook, by its fully qualified name.
    report = str(tmp_path / "health.json")
    unused, output = controller.playbook(
        "pgtidy.maintenance.health", "-e", json.dumps({
            "pgtidy_login_host": "127.0.0.1", "pgtidy_login_port": pg.port, "pgtidy_login_db": fresh_db,
            "pgtidy_ssl_mode": "disable", "pgtidy_report_file": report}))
    assert "failed=0" in output
    with open(report) as fh:
        assert json.load(fh)["available"] is True


def test_docs_and_role_specs_render_from_the_installed_collection(controller):
    env = controller.env()
    unused, listing = run([ansible("ansible-doc"), "-l", "pgtidy.maintenance"], env=env, cwd=controller.base)
    modules = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))
               if not os.path.basename(p).startswith("_")}
    assert {m.split()[0] for m in listing.splitlines() if m.startswith("pgtidy.")} == \
        {"pgtidy.maintenance." + m for m in modules}
    unused, doc = run([ansible("ansible-doc"), "pgtidy.maintenance.dagster_prune"], env=env, cwd=controller.base)
    assert "login_host" in doc and "psycopg" in doc    # the shared doc fragment resolved
    unused, role_doc = run([ansible("ansible-doc"), "-t", "role", "pgtidy.maintenance.repack_image"], env=env,
                           cwd=controller.base)
    assert "repack_image_engine" in role_doc


def test_roles_resolve_from_the_installed_collection(controller):
    collection = os.path.join(controller.collections, "ansible_collections", "pgtidy", "maintenance")
    assert role_task_files(collection)
    controller.playbook("--syntax-check", controller.write_play("roles.yml", import_every_task_file_play(collection)))

    # The argument spec is enforced before anything else runs: a wrong engine never reaches an engine.
    play = controller.write_play("bad-engine.yml", [{
        "name": "Image", "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "pgtidy.maintenance.repack_image", "vars": {"repack_image_engine": "bogus"}}]}])
    rc, output = controller.playbook(play, check=False)
    assert rc != 0
    assert "repack_image_engine" in output and "value of repack_image_engine must be one of" in output, \
        output[-2000:]


EE_DEFINITION = {
    "version": 3,
    "dependencies": {
        "ansible_core": {"package_pip": "ansible-core"},
        "ansible_runner": {"package_pip": "ansible-runner"},
        "galaxy": {"collections": [{"name": "pgtidy.maintenance"}]},
    },
}


def render_execution_environment(definition, controller, work):
    """ansible-builder's build context for ``definition``, and what its introspect step (the rendered script,
    run as the Containerfile runs it) finds in the installed collections: (Containerfile, pip lines,
    bindep.Depends)."""
    from bindep.depends import Depends
    os.makedirs(work)
    path = os.path.join(work, "execution-environment.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(definition, fh)
    context = os.path.join(work, "context")
    run([ansible("ansible-builder"), "create", "-f", path, "-c", context], cwd=work)
    with open(os.path.join(context, "Containerfile")) as fh:
        containerfile = fh.read()
    step = re.search(r"^RUN \$PYCMD /output/scripts/introspect.py (introspect .*)$", containerfile, re.M)
    assert step, containerfile
    pip_out, bindep_out = os.path.join(work, "requirements.txt"), os.path.join(work, "bindep.txt")
    args = [a for a in step.group(1).split() if not a.startswith(("--write-pip=", "--write-bindep="))]
    build = os.path.join(context, "_build")    # the Containerfile's WORKDIR for this step
    run([sys.executable, os.path.join(build, "scripts", "introspect.py"), *args, controller.collections,
         "--write-pip", pip_out, "--write-bindep", bindep_out], cwd=build)
    with open(pip_out) as fh:
        pip_lines = fh.read().splitlines()
    with open(bindep_out) as fh:
        depends = Depends(fh.read())
    return containerfile, pip_lines, depends


def packages_for(depends, *platform):
    return {rule[0] for rule in depends.active_rules(["default", *platform])}


RPM = ("platform:rpm", "platform:redhat", "platform:centos")
DPKG = ("platform:dpkg", "platform:debian", "platform:debian-12", "platform:debian-bookworm")


def test_execution_environment_build_context_installs_the_requirements(controller, tmp_path):
    containerfile, pip_lines, depends = render_execution_environment(EE_DEFINITION, controller,
                                                                     str(tmp_path / "default"))
    # The build installs the collections, reads their requirements, then installs those in the final image.
    steps = ["ansible-galaxy collection install", "introspect.py introspect", "/output/scripts/assemble",
             "/output/scripts/install-from-bindep"]
    positions = [containerfile.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), containerfile

    ours = "# from collection pgtidy.maintenance"
    python = [line.split("#")[0].strip() for line in pip_lines if line.endswith(ours)]
    assert python == ["psycopg[binary]>=3.1"]
    from packaging.requirements import Requirement
    import psycopg
    assert Requirement(python[0]).specifier.contains(psycopg.__version__)
    # bindep picks the system packages per platform, as assemble runs it in the image.
    assert {"postgresql", "pg_repack_17"} <= packages_for(depends, *RPM)
    debian = packages_for(depends, *DPKG)
    assert {"postgresql-client", "postgresql-15-repack"} <= debian and "postgresql-17-repack" not in debian
    # With the PostgreSQL project's apt repository, the pgdg profile names its build for PostgreSQL 17 instead.
    pgdg = {rule[0] for rule in depends.active_rules(["pgdg", *DPKG])}
    assert {"postgresql-client", "postgresql-17-repack"} <= pgdg and "postgresql-15-repack" not in pgdg


def test_execution_environment_for_another_postgresql_major(controller, tmp_path):
    """The README's way to take the pg_repack client of another major: exclude ours, name yours."""
    definition = json.loads(json.dumps(EE_DEFINITION))
    definition["dependencies"].update({"system": ["pg_repack_16 [platform:rpm]"],
                                       "exclude": {"system": ["pg_repack_17"]}})
    depends = render_execution_environment(definition, controller, str(tmp_path / "pg16"))[2]
    rpm = packages_for(depends, *RPM)
    assert "pg_repack_16" in rpm and "pg_repack_17" not in rpm and "postgresql" in rpm


def test_changelog_is_rendered_from_its_sources(tmp_path):
    tool = ansible("antsibull-changelog")
    run([tool, "lint"])
    run([tool, "lint-changelog-yaml", os.path.join(ROOT, "changelogs", "changelog.yaml")])
    rendered = tmp_path / "CHANGELOG.rst"
    run([tool, "generate", "--output", str(rendered), "--output-format", "rst"])
    with open(os.path.join(ROOT, "CHANGELOG.rst")) as fh:
        assert fh.read() == rendered.read_text(), "CHANGELOG.rst is stale: run make changelog"
    with open(os.path.join(ROOT, "changelogs", "changelog.yaml")) as fh:
        releases = yaml.safe_load(fh)["releases"]
    assert galaxy_yml()["version"] in releases


def test_ansible_lint_is_clean_on_the_whole_tree_from_the_collection_root():
    """What `make lint` runs, and what Galaxy's import runs from the collection root."""
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), NO_COLOR="1")
    run(["bash", os.path.join(ROOT, "scripts", "with-collection.sh"), ansible("ansible-lint"), "--offline",
         "--profile", "production"], env=env)


README_ROW = re.compile(r"^\|([^|]*)\|([^|]*)\|", re.M)


def readme_defaults(text):
    """variable -> default of the variables table in a role's README (``| `var` | `default` | meaning |``; a
    row may name several variables, with one default for all or one each)."""
    found = {}
    for names_cell, default_cell in README_ROW.findall(text):
        names = re.findall(r"`([a-z0-9_]+)`", names_cell)
        values = re.findall(r"`([^`]*)`", default_cell)
        if not names or not values:
            continue
        assert len(values) in (1, len(names)), (names_cell, default_cell)
        for name, value in zip(names, values * len(names) if len(values) == 1 else values):
            try:
                found[name] = yaml.safe_load(value)
            except yaml.YAMLError:     # a systemd calendar such as *-*-01 04:00:00 is not YAML
                found[name] = value
    return found


def test_every_role_in_the_tarball_has_a_readme_whose_defaults_are_the_roles(artifacts):
    """Galaxy's import refuses a collection with a role without README.md; the defaults the README shows are
    those of the role's defaults/main.yml and meta/argument_specs.yml."""
    with tarfile.open(artifacts["tarball"]) as tar:
        names = set(tar.getnames())
        roles = sorted({n.split("/")[1] for n in names if re.match(r"roles/[^/]+/", n)})
        assert roles == sorted(os.listdir(os.path.join(ROOT, "roles"))), roles
        for role in roles:
            assert "roles/%s/README.md" % role in names, "roles/%s has no README.md" % role
            text = tar.extractfile("roles/%s/README.md" % role).read().decode()
            defaults = yaml.safe_load(tar.extractfile("roles/%s/defaults/main.yml" % role))
            options = yaml.safe_load(tar.extractfile("roles/%s/meta/argument_specs.yml" % role))[
                "argument_specs"]["main"]["options"]
            assert text.startswith("# pgtidy.maintenance.%s\n" % role), text[:200]
            shown = readme_defaults(text)
            assert shown, "no variables table in roles/%s/README.md" % role
            for name, value in shown.items():
                assert name in defaults, "%s: %s is not a variable of the role" % (role, name)
                assert value == defaults[name] == options[name]["default"], (role, name, value, defaults[name])


# Hosts under the reserved top-level domains of RFC 2606, which resolve nowhere.
RESERVED_HOSTS = re.compile(r"https?://[^/\s\"']*\.(invalid|test|example|localhost)(?=[/:\s\"']|$)", re.M)


def test_no_made_up_urls_in_galaxy_yml_or_anywhere_in_the_tree(artifacts):
    """galaxy.yml's repository and the repack_image role's image source label pointed at a reserved domain
    that no browser can open. The collection has no public repository, so none is named."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    offenders = []
    for path in tracked.decode().split("\0"):
        full = os.path.join(ROOT, path)
        if not path or not os.path.isfile(full):
            continue
        with open(full, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        # Documented examples of values a user sets (mirror.example) are fine; a default or a link is not.
        offenders += ["%s: %s" % (path, m.group(0)) for m in RESERVED_HOSTS.finditer(text) if m.group(1) == "invalid"]
    assert not offenders, offenders

    info = galaxy_yml()
    for key in ("repository", "documentation", "homepage", "issues"):
        value = info.get(key)
        assert value is None or value == "none" or not RESERVED_HOSTS.search(value), (key, value)
    # Galaxy's import requires a repository (a non-empty string).
    assert isinstance(info["repository"], str) and info["repository"]
    with tarfile.open(artifacts["tarball"]) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        defaults = yaml.safe_load(tar.extractfile("roles/repack_image/defaults/main.yml"))
    assert manifest["repository"] == info["repository"]
    assert not RESERVED_HOSTS.search(defaults["repack_image_source_url"] or "")


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt (Debian or Ubuntu)")
def test_bindep_in_the_installed_collection_names_only_packages_apt_has(controller):
    """What `bindep -b` prints in the installed collection can be installed with apt here."""
    collection = os.path.join(controller.collections, "ansible_collections", "pgtidy", "maintenance")
    unused, profiles = run([ansible("bindep"), "--profiles"], cwd=collection, stdout_only=True)
    unused, listed = run([ansible("bindep"), "-l", "newline"], cwd=collection, stdout_only=True)
    rc, missing = run([ansible("bindep"), "-b"], cwd=collection, check=False, stdout_only=True)
    assert rc in (0, 1), missing
    packages, missing = listed.split(), missing.split()
    assert set(missing) <= set(packages), (missing, packages)
    unknown = [p for p in packages
               if subprocess.run(["apt-cache", "show", p], capture_output=True, check=False).returncode != 0]
    assert not unknown, "bindep names packages apt does not have: %s (listed: %s)" % (unknown, packages)
    assert "postgresql-client" in packages
    if "platform:debian-12" in profiles.split():
        assert "postgresql-15-repack" in packages, packages


def test_the_upload_check_runs_from_a_locked_environment():
    """`make lint` installs galaxy-importer from locks/galaxy.txt: the pin of locks/galaxy.in, every package
    with its hashes."""
    with open(os.path.join(ROOT, "locks", "galaxy.in")) as fh:
        pins = [line.split("#")[0].strip() for line in fh if line.split("#")[0].strip()]
    with open(os.path.join(ROOT, "locks", "galaxy.txt")) as fh:
        lock = fh.read()
    blocks = [b for b in re.split(r"\n(?=\S)", lock) if re.match(r"[A-Za-z0-9_.-]+==", b)]
    assert len(blocks) > 10
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}", b) for b in blocks), lock
    locked = {b.split("==")[0].lower(): b.split("==")[1].split()[0] for b in blocks}
    for pin in pins:
        name, version = pin.split("==")
        assert locked.get(name.lower()) == version, (pin, locked.get(name.lower()))
