"""Prefect tasks: one module per stage, each a thin ``@task`` over one plain function of
``doughflow.stages`` (what tests call). Retries, timeouts and cache keys come from
``doughflow.orchestration.stage_tasks``, so every stage gets them the same way."""
