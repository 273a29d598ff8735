"""Hook implementations: the ``ray`` job executor.

Imported whenever plugins load: it imports nothing heavy (ray is imported when the executor starts).
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import JobExecutorSpec


@hookimpl
def lamina_job_executors() -> list[JobExecutorSpec]:
    return [
        JobExecutorSpec(
            name="ray",
            factory="lamina_ray.executor:create_executor",
            description=(
                "Runs job handlers in the server and fans their work items (batch lines, ...) out to a pool "
                "of Ray actors, each holding a worker stack built from the run config."
            ),
        )
    ]
