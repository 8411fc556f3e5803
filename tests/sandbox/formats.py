"""Every docker `--format` template berth sends to a server, for the real-engine test.

tests/unit/test_container_states.py counts the `docker … --format` sites in berth/: a new one
fails that test until it is added here (and so run against a real engine).
"""

from __future__ import annotations

from berth.remote.commands.doctor import CONTAINER_DETAILS_FORMAT
from berth.remote.commands.preflight import LISTEN_FORMAT
from berth.remote.commands.proxy import IMAGE_FORMAT
from berth.remote.engines.compose import INSPECT_FORMAT

FORMAT_SITES = {
    "berth/remote/commands/doctor.py": 4,  # version, INSPECT_FORMAT, CONTAINER_DETAILS_FORMAT, info
    "berth/remote/commands/host.py": 1,  # version
    "berth/remote/commands/preflight.py": 2,  # LISTEN_FORMAT, info
    "berth/remote/engines/compose.py": 3,  # INSPECT_FORMAT, image inspect .Id, images .Repository:.Tag
    "berth/remote/engines/swarm.py": 1,  # info: the swarm state
    # image inspect .Id .Os/.Architecture, version platform, image inspect .RootFS.Layers
    "berth/remote/commands/images.py": 3,
}

# (name, docker argv before the objects, whether it takes container ids)
ENGINE_FORMATS = [
    ("inspect containers", ["inspect", "--format", INSPECT_FORMAT], "containers"),
    ("container details", ["inspect", "--format", CONTAINER_DETAILS_FORMAT], "containers"),
    ("published ports", ["inspect", "--format", LISTEN_FORMAT], "containers"),
    ("server version", ["version", "--format", "{{.Server.Version}}"], None),
    ("docker root", ["info", "--format", "{{.DockerRootDir}}"], None),
    ("image id", ["image", "inspect", "--format", "{{.Id}}"], "images"),
    ("image names", ["images", "--format", "{{.Repository}}:{{.Tag}}"], None),
    ("proxy image", ["inspect", "--format", IMAGE_FORMAT], "containers"),
    ("gather: version", ["version", "--format", "{{.Server.Version}}"], None),
    ("image platform", ["image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}}"], "images"),
    ("image layers", ["image", "inspect", "--format", "layers {{json .RootFS.Layers}}"], "images"),
    ("server platform", ["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], None),
    ("swarm state", ["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.NodeID}}"],
     None),
]
