"""Hook implementations of lamina-test-jobs.

``inline::test-jobs`` (an inference provider serving no model: any served API would do) registers the
job kinds of ``lamina_test_jobs.provider``; ``POST /test-jobs/submit`` submits one (the product's APIs
submit jobs from their own routes, like eval's run_eval); the ``test-counting`` executor runs handlers
inline and counts them.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, JobExecutorSpec, ProviderSpec, RouteSpec


@hookimpl
def lamina_inference_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.inference,
            provider_type="inline::test-jobs",
            config_class="lamina_test_jobs.provider:Config",
            factory="lamina_test_jobs.provider:create_provider",
            description="Registers test job kinds (count, once, fail); serves no model.",
        )
    ]


@hookimpl
def lamina_routes() -> list[RouteSpec]:
    return [
        RouteSpec(
            method="POST",
            path="/test-jobs/submit",
            handler="lamina_test_jobs.web:submit",
            description="Submit a test job: {kind, params, total}.",
        ),
        RouteSpec(
            method="GET",
            path="/test-jobs/executor",
            handler="lamina_test_jobs.web:executor_runs",
            description="The job ids the test-counting executor ran.",
        ),
    ]


@hookimpl
def lamina_job_executors() -> list[JobExecutorSpec]:
    return [
        JobExecutorSpec(
            name="test-counting",
            factory="lamina_test_jobs.executor:create_executor",
            description="Runs handlers inline and records which jobs it ran (tests only).",
        )
    ]
