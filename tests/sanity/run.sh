#!/usr/bin/env bash
# ansible-test sanity|units needs the collection at ansible_collections/NAMESPACE/NAME in a git
# checkout of its own: copy what git knows of this tree there and run it on Python 3.11.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dest=$repo/.cache/sanity/ansible_collections/stacklift/migrate
rm -rf "$dest" && mkdir -p "$dest"
cd "$repo"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dest"
# awx.awx beside it (the unit tests check examples/awx/controller.yml against it), from `make collection`
if [ -d .cache/collections/ansible_collections/awx/awx ]; then
    rm -rf "$dest/../../awx" && mkdir -p "$dest/../../awx"
    cp -r .cache/collections/ansible_collections/awx/awx "$dest/../../awx/awx"
fi
# ansible-test would download get-pip.py from outside the package registries; see the script.
pip_cache=$HOME/.ansible/test/cache
mkdir -p "$pip_cache"
cp tests/sanity/get_pip_bootstrap.py "$pip_cache/get_pip_24_2.py"   # the pip that ansible-core 2.19 bootstraps
cd "$dest"
git init -q && git add -A && git -c user.name=sanity -c user.email=sanity@localhost commit -qm sanity
command=${1:-sanity}
shift || true
exec "$repo/.venv/bin/ansible-test" "$command" --python 3.11 --requirements "$@"
