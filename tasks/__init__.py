"""Prefect tasks: each module holds a plain stage function (config + paths in, small result out)
and a thin ``@task`` over it. Tests call the plain functions; flows call the tasks."""
