"""The provider config: Llama Stack 0.2.4's ``CodeInterpreterToolConfig`` had no fields; these are Lamina's.

Every field has a default, so Llama Stack's ``config: {}`` validates. The limits are the most a call
gets; a call may lower them (``kwargs`` ``timeout_seconds``, ``cpu_seconds``, ``memory_mb``,
``max_processes``, ``max_output_bytes``), never raise them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CodeInterpreterToolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox: Literal["bwrap", "none"] = Field(
        default="bwrap",
        description="'bwrap': each call runs in a bubblewrap sandbox (no network, no view of the server's "
        "files); the server refuses to start when bwrap cannot run. 'none': a plain subprocess with the "
        "same resource limits but NO network or file isolation: only for trusted code on a developer's "
        "machine.",
    )
    require_sandbox: bool = Field(
        default=True,
        description="With sandbox 'bwrap': true, the server refuses to start when bwrap cannot run; false, "
        "it starts without the code interpreter, whose calls are then refused (503) naming the fix. Code "
        "never runs unsandboxed unless `sandbox` is 'none'.",
    )
    bwrap_path: str = Field(
        default="bwrap", description="The bubblewrap executable (a name on PATH or a path)."
    )
    python_executable: str | None = Field(
        default=None,
        description="The interpreter that runs the code; default: the server's own. Its installation "
        "(prefix, standard library) is bound read-only into the sandbox.",
    )
    import_paths: list[str] | None = Field(
        default=None,
        description="Directories the code may import from, bound read-only; default: the interpreter's "
        "site-packages (numpy and whatever else is installed there). [] for the standard library only.",
    )
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600, description="Wall-time limit of one call.")
    cpu_seconds: int = Field(default=10, ge=1, le=3600, description="CPU-time limit of each process.")
    memory_mb: int = Field(
        default=512,
        ge=32,
        le=65536,
        description="Address-space limit of each process (RLIMIT_AS), and the memory limit of the whole "
        "sandbox when a cgroup can be created.",
    )
    max_processes: int = Field(
        default=16, ge=1, le=4096, description="Processes and threads one call may run at once."
    )
    max_output_bytes: int = Field(
        default=65536, ge=256, le=16 * 1024 * 1024, description="Bytes of stdout, and of stderr, returned."
    )
    tmp_size_mb: int = Field(default=64, ge=1, le=65536, description="Size of each call's private /tmp.")
    max_code_bytes: int = Field(default=1024 * 1024, ge=1, description="Largest `code` accepted.")
    max_concurrent: int = Field(
        default=4, ge=1, le=256, description="Sandboxes running at once; further calls wait their turn."
    )
    sandbox_uid_base: int = Field(
        default=64000,
        ge=1000,
        description="When the server runs as root, call slot i runs as uid/gid sandbox_uid_base + i (no "
        "user should own files there): the process limit then counts only that call's processes.",
    )
    use_cgroup: bool = Field(
        default=True,
        description="Also put each sandbox in its own cgroup (memory and pids limits for all its processes "
        "together) when the server may create one; rlimits alone otherwise.",
    )
