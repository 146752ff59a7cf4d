"""Images of the demo stack, built from Debian packages without a registry.

One Debian 13 root holds the packages of all three services; it becomes a
shared base layer.  Each image adds a small layer of its own (entrypoint, app)
and its own config.  The images are written as one docker-archive whose
configs are byte-for-byte deterministic, so every host that loads it gets the
same image IDs: the image ID is the content digest a module compares.
"""

import hashlib
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "images"

IMAGE_ROOT_PACKAGES = [
    "postgresql-17", "redis-server", "python3", "python3-psycopg2", "python3-redis",
    "procps", "iproute2", "curl",
]

# Docs, translations and PostgreSQL's JIT (LLVM) are dropped: -230 MB per host.
IMAGE_ROOT_TRIM = (
    "rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/locale/* /usr/share/i18n "
    "/usr/lib/x86_64-linux-gnu/libLLVM* /usr/lib/x86_64-linux-gnu/libz3* "
    "/usr/lib/postgresql/17/lib/llvmjit* /usr/lib/postgresql/17/lib/bitcode"
)

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# name -> (files to add: {path in image: (source, mode)}, config)
IMAGES = {
    "postgres": (
        {"/usr/local/bin/stacklift-postgres": ("postgres/entrypoint.sh", 0o755),
         "/usr/local/lib/stacklift/fakeuid.so": ("postgres/fakeuid.so", 0o755)},
        {"Entrypoint": ["/usr/local/bin/stacklift-postgres"], "ExposedPorts": {"5432/tcp": {}},
         "StopSignal": "SIGINT"},
    ),
    "redis": (
        {"/usr/local/bin/stacklift-redis": ("redis/entrypoint.sh", 0o755)},
        {"Entrypoint": ["/usr/local/bin/stacklift-redis"], "ExposedPorts": {"6379/tcp": {}}},
    ),
    "shop": (
        {"/opt/shop/shop.py": ("shop/shop.py", 0o755)},
        {"Entrypoint": ["/usr/bin/python3", "-u", "/opt/shop/shop.py"], "ExposedPorts": {"8080/tcp": {}}},
    ),
}
TAG = "latest"
EPOCH = 1767225600  # 2026-01-01: fixed timestamps keep the image IDs reproducible


def image_ref(name):
    return "localhost/stacklift/%s:%s" % (name, TAG)


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _compile_fakeuid(out_dir):
    src = HERE / "postgres" / "fakeuid.c"
    out = out_dir / "fakeuid.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(src)], check=True)
    return out


def _base_layer(root, dest):
    """The root as a reproducible tar (sorted, numeric owners, fixed mtimes)."""
    tmp = dest.with_suffix(".tmp")
    subprocess.run(
        ["tar", "--sort=name", "--numeric-owner", "--mtime=@%d" % EPOCH, "--clamp-mtime",
         "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
         "--exclude=./.stacklift-complete", "--exclude=./proc/*", "--exclude=./sys/*",
         "--exclude=./dev/*", "-C", str(root), "-cf", str(tmp), "."], check=True)
    tmp.rename(dest)


def _service_layer(files, built):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = Path(path).parent.parts[1:]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(ti)
        for path, (src, mode) in sorted(files.items()):
            data = built.get(src) or (HERE / src).read_bytes()
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.size, ti.mode, ti.mtime = len(data), mode, EPOCH
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def recipe_digest(root_digest):
    h = hashlib.sha256(root_digest.encode())
    for f in sorted(HERE.rglob("*")):
        if f.is_file() and f.suffix != ".so":
            h.update(str(f.relative_to(HERE)).encode())
            h.update(f.read_bytes())
    h.update(json.dumps(IMAGES, sort_keys=True).encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def build_archive(root, root_digest, out_dir, log):
    """Return (archive path, {image ref: image id}); built once per recipe."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = recipe_digest(root_digest)
    archive = out_dir / ("stacklift-images-%s.tar" % digest)
    ids_file = archive.with_suffix(".json")
    if archive.exists() and ids_file.exists():
        return archive, json.loads(ids_file.read_text())
    t0 = time.time()
    base = out_dir / ("base-%s.tar" % root_digest)
    if not base.exists():
        log("writing base layer from %s ..." % root)
        _base_layer(root, base)
    base_diff = _sha256_file(base)
    built = {"postgres/fakeuid.so": _compile_fakeuid(out_dir).read_bytes()}
    manifest, blobs, ids = [], {}, {}
    for name, (files, cfg) in sorted(IMAGES.items()):
        layer = _service_layer(files, built)
        layer_diff = hashlib.sha256(layer).hexdigest()
        blobs["%s/layer.tar" % layer_diff] = layer
        config = {
            "architecture": "amd64", "os": "linux",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH)),
            "config": dict(cfg, Env=[PATH_ENV], WorkingDir="/",
                           Labels={"org.stacklift.image": name, "org.stacklift.recipe": digest}),
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + base_diff, "sha256:" + layer_diff]},
            "history": [{"created_by": "debootstrap %s" % root_digest},
                        {"created_by": "stacklift lab image %s" % name}],
        }
        config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
        config_id = hashlib.sha256(config_bytes).hexdigest()
        blobs["%s.json" % config_id] = config_bytes
        manifest.append({"Config": "%s.json" % config_id, "RepoTags": [image_ref(name)],
                         "Layers": ["%s/layer.tar" % base_diff, "%s/layer.tar" % layer_diff]})
        ids[image_ref(name)] = "sha256:" + config_id
    blobs["manifest.json"] = json.dumps(manifest, indent=1).encode()
    tmp = archive.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(base), arcname="%s/layer.tar" % base_diff)
        for arcname, data in blobs.items():
            ti = tarfile.TarInfo(arcname)
            ti.size, ti.mtime = len(data), EPOCH
            tar.addfile(ti, io.BytesIO(data))
    tmp.rename(archive)
    ids_file.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
    for old in out_dir.glob("stacklift-images-*.tar"):
        if old != archive:
            old.unlink()
            old.with_suffix(".json").unlink(missing_ok=True)
    for old in out_dir.glob("base-*.tar"):
        if old != base:
            old.unlink()
    log("images archive written in %.0f s: %s" % (time.time() - t0, archive))
    return archive, ids
