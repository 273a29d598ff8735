"""``jobs.executor_config`` of the ray executor."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lamina.errors import field_problems


class RayExecutorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        description="The Ray cluster to connect to: its GCS address (host:port, as `ray start --head` prints "
        "it), a ray:// client address, or 'auto' (the cluster this machine's `ray start` joined)."
    )
    num_actors: int = Field(
        default=2,
        ge=1,
        le=1024,
        description="Actors in the pool; each holds a worker stack (its providers; a local model loads once "
        "per actor).",
    )
    max_in_flight: int = Field(
        default=16,
        ge=1,
        le=10_000,
        description="Items one actor runs at once (backpressure: no more are sent to it until one finishes).",
    )
    num_cpus: float = Field(
        default=1.0, ge=0, description="CPUs Ray reserves for each actor (0: place them regardless of CPUs)."
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Times an item is tried when the actor (or node) running it dies; then the map fails.",
    )
    namespace: str = Field(default="lamina", min_length=1, description="The Ray namespace of the actors.")
    apis: list[str] | None = Field(
        default=None,
        description="The APIs the actors start providers for (with their dependencies), e.g. [inference]; "
        "default every configured provider.",
    )
    runtime_env: dict[str, Any] | None = Field(
        default=None, description="A Ray runtime_env for the actors (env_vars, working_dir, ...)."
    )
    start_actors: Literal["first_batch", "with_server"] = Field(
        default="first_batch",
        description="When the actor pool starts: 'first_batch' (by the first job that fans work out; no "
        "actors, and no CPUs held in the cluster, until then) or 'with_server' (in the background once the "
        "server has started: the actors' start-up, seconds of CPU each, is paid before any batch, and actors "
        "that cannot start are logged then). Either way the pool then holds num_actors x num_cpus CPUs, "
        "which other Ray work (a post-training actor) cannot use, until idle_timeout.",
    )
    idle_timeout: float | None = Field(
        default=600.0,
        gt=0,
        description="Seconds without any work fanned out after which the pool's actors are stopped, freeing "
        "their cluster CPUs (and the models they loaded) for other Ray work; the next job starts a new "
        "pool. null: keep the actors for the server's life.",
    )
    start_timeout: float = Field(
        default=120.0, gt=0, description="Seconds an actor may take to build and start its worker stack."
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("give the cluster's address (host:port of `ray start --head`) or 'auto'")
        return value


def parse_config(config: dict[str, Any]) -> RayExecutorConfig:
    """The validated settings; ValueError naming each bad field and the fix (the stack prefixes it with
    ``jobs.executor_config``)."""
    try:
        return RayExecutorConfig.model_validate(config)
    except ValidationError as exc:
        problems = []
        for problem in field_problems(exc):
            text = str(problem)
            if problem.type == "missing" and problem.path == "address":
                text = (
                    "address: required: the Ray cluster's address (host:port of `ray start --head`) or 'auto'"
                )
            elif problem.type == "extra_forbidden":
                known = ", ".join(RayExecutorConfig.model_fields)
                text = f"{problem.path}: unknown setting; the ray executor takes {known}"
            problems.append(text)
        raise ValueError("; ".join(problems)) from None
