# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:

    # The engine option every module that drives a container engine has, the hosts it runs on, and the action
    # group they all belong to (meta/runtime.yml). List it before ansible.builtin.action_common_attributes.
    DOCUMENTATION = r"""
requirements:
  - on the host, podman (O(engine=podman)) or the Docker SDK for Python C(docker) and a Docker daemon (O(engine=docker))
options:
  engine:
    description:
      - Container engine on the host. V(auto) prefers Podman, then Docker.
      - V(podman) drives the podman CLI. V(docker) drives the Docker Engine API through the Docker SDK
        for Python (C(docker)) on the host; the daemon must run in experimental mode, with the
        overlay2 storage driver.
      - On Docker, CRIU options (tcp-established, file-locks) come from the file that the container's
        C(org.criu.config) annotation names, else from C(/etc/criu/runc.conf), as runc reads them;
        checkpoints are refused, before anything is frozen, when an option asked for is not there.
      - The two engines' archives differ; an archive is restored by the engine that made it.
    type: str
    choices: [auto, podman, docker]
    default: auto
attributes:
  platform:
    support: full
    platforms: posix
  action_group:
    description: Part of the action group C(stacklift.migrate.migrate), for setting O(engine) once in C(module_defaults).
    support: full
    membership:
      - stacklift.migrate.migrate
"""

    # The host a module sends data to directly (used with SSH_CONNECTION).
    SSH_TARGET = r"""
options:
  target_host:
    description:
      - Address of the target host, as this host reaches it; C(user@address:port) gives the user and
        port too (C(user@[address]:port) for IPv6), over O(target_user) and O(target_port).
      - Jump hosts come first, each ended by a comma (C(root@192.0.2.5:22,stacklift@10.0.1.12:22)),
        as OpenSSH's ProxyJump takes them; each must allow TCP forwarding.
      - The C(stacklift.migrate.ssh_endpoint) filter makes it from a target's inventory variables.
    type: str
    required: true
"""

    # How a module on one host reaches another host over SSH to send it data directly.
    SSH_CONNECTION = r"""
options:
  target_port:
    description: SSH port of the target.
    type: int
    default: 22
  target_user:
    description:
      - User on the target. Another user than root must have passwordless sudo there; the module's
        commands on the target (writing archives, loading images) run through C(sudo -n).
    type: str
    default: root
  key_file:
    description: Private key on this host for the target. Defaults to the usual keys in ~/.ssh.
    type: path
  private_key:
    description:
      - The private key for the target (and any jump hosts) itself, its text (OpenSSH or PEM; Ed25519,
        ECDSA or RSA, without a passphrase), as an AWX credential gives it; O(key_file) is not read then.
        It is held in memory only, and never logged.
      - Without O(private_key) or O(key_file), the SSH agent (C(SSH_AUTH_SOCK)) and the usual keys in
        ~/.ssh are tried, as OpenSSH's client does.
    type: str
  host_key_checking:
    description:
      - V(strict) accepts only targets whose key is in O(known_hosts_file) (the roles' preflight puts
        each target's key there, read over the controller's own connection to it).
      - V(accept_new) trusts an unknown target on first use and records it, as OpenSSH's accept-new
        does (so a first connection to an impostor would receive the stack's memory).
      - V(ignore) checks nothing.
    type: str
    choices: [strict, accept_new, ignore]
    default: strict
  known_hosts_file:
    description: Known hosts file on this host; stacklift's own, so no other file is rewritten.
    type: path
    default: /var/lib/stacklift/known_hosts
  connect_timeout:
    description: Seconds to wait for the SSH connection.
    type: int
    default: 10
requirements:
  - paramiko on the host that sends
"""

    # Archives encrypted at rest (module_utils/encryption.py).
    ENCRYPTION = r"""
options:
  encryption_key:
    description:
      - Passphrase of the archives' encryption at rest (keep it in a vaulted variable; never logged).
      - On checkpoint the archive is encrypted (AES-256-GCM in authenticated chunks, the key derived
        with scrypt) as soon as it is complete, and its plaintext removed; on restore or inspection an
        encrypted archive is decrypted into a private file beside it, removed right after. A tampered,
        cut or wrongly keyed archive is refused.
    type: str
requirements:
  - cryptography, with O(encryption_key)
"""

    # How stacklift speaks to PostgreSQL itself (trust authentication, no client library).
    POSTGRES = r"""
options:
  postgres_user:
    description: PostgreSQL user.
    type: str
    default: postgres
  postgres_password:
    description:
      - Password of O(postgres_user), when the server asks for one (C(scram-sha-256), C(md5) or
        C(password) in C(pg_hba.conf)). Keep it in a vaulted variable; it is never logged.
    type: str
  postgres_db:
    description: PostgreSQL database.
    type: str
    default: postgres
"""

    # The options window_source and window_target share: which run of which stack, on which services.
    WINDOW = r"""
options:
  stack:
    description: Name of the stack (it names the host's marker journal and the target's fence).
    type: str
    required: true
  run_id:
    description: The migration run, as the controller's journal (C(stacklift.migrate.migration_journal)) names it.
    type: str
    required: true
  services:
    description:
      - The stack's services on this host, as C(stacklift.migrate.stack_plan) describes them
        (C(name), C(container), C(tcp); C(target) on a source, C(probe) on a target).
    type: list
    elements: dict
    required: true
  secrets:
    description:
      - The services' passwords by service name, each with C(probe) and C(quiesce) mappings of
        C(postgres_password) and C(redis_password), as the filter C(stacklift.migrate.stack_secrets)
        takes them from the stack description. Never logged.
    type: dict
    default: {}
  tiers:
    description:
      - Service names, tier by tier, dependencies first (C(stack_plan)'s C(checkpoint_order) or
        C(restore_order)); names of services on other hosts are skipped.
    type: list
    elements: list
    required: true
  archive_dir:
    description: Where the archives and the host's marker journal (C(STACK.journal)) are, on every host.
    type: path
    default: /var/lib/stacklift/checkpoints
  nice:
    description:
      - Niceness (-20 to 19) the call runs at, with the engine commands, CRIU and compressors it starts
        (Docker's daemons keep their own). A negative one puts the stack's pause ahead of the host's
        other work while its services are frozen; V(0) leaves it as it is.
    type: int
    default: 0
"""
