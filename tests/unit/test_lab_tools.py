"""The lab's own logic: where its Debian mirror comes from, and reproducible images."""

import hashlib
import io
import tarfile

import pytest

import images
import lab
import roots


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_mirror_comes_from_deb822_sources_and_skips_security(tmp_path):
    write(tmp_path / "sources.list.d/debian.sources",
          "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n"
          "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm\nComponents: main\n")
    assert roots.debian_mirror(tmp_path) == "http://mirror.invalid/debian"


def test_mirror_comes_from_legacy_sources_list(tmp_path):
    write(tmp_path / "sources.list", "# comment\ndeb [arch=amd64] http://legacy.invalid/debian bookworm main\n")
    assert roots.debian_mirror(tmp_path) == "http://legacy.invalid/debian"


def test_disabled_stanzas_are_ignored(tmp_path):
    write(tmp_path / "sources.list.d/a.sources",
          "Types: deb\nURIs: http://off.invalid/debian\nEnabled: no\n\nTypes: deb\nURIs: http://on.invalid/debian\n")
    assert roots.debian_mirror(tmp_path) == "http://on.invalid/debian"


def test_no_mirror_is_a_clear_error(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    with pytest.raises(SystemExit, match="no Debian mirror"):
        roots.debian_mirror(tmp_path)


def test_service_layer_is_reproducible():
    files = {"/opt/shop/shop.py": ("shop/shop.py", 0o755)}
    a = images._service_layer(files, {})
    b = images._service_layer(files, {})
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        names = tar.getnames()
        assert names == ["opt", "opt/shop", "opt/shop/shop.py"]
        assert tar.getmember("opt/shop/shop.py").mode == 0o755


def test_recipe_digest_follows_the_root():
    assert images.recipe_digest("a") != images.recipe_digest("b")
    assert images.recipe_digest("a") == images.recipe_digest("a")


def test_node_addresses_are_distinct_and_inside_the_lab_subnet():
    addrs = [lab.node_addr(n) for n in lab.node_names(5)]
    assert len(set(addrs)) == 5
    assert all(a.startswith(lab.SUBNET_PREFIX + ".") for a in addrs)
