# doughflow worker image: the pipeline code and its pinned CPU dependencies. Every compose service
# but Postgres runs it, as the unprivileged user `doughflow`.
# GPU hosts: Dockerfile.gpu (the compose `gpu` profile builds it for its GPU worker).
# The base is pinned to an exact Python and Debian release, so a rebuild gets the same system.
FROM python:3.11.16-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends build-essential git && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 doughflow \
 && useradd --system --uid 10001 --gid doughflow --create-home --home-dir /home/doughflow --shell /usr/sbin/nologin doughflow
WORKDIR /opt/doughflow
COPY pyproject.toml constraints-cpu.txt README.md ./
COPY doughflow doughflow
COPY flows flows
COPY tasks tasks
ENV PIP_TORCH="--extra-index-url https://download.pytorch.org/whl/cpu"
# Installed as root and owned by root: the services can read their code but not change it.
RUN python -m pip install -q -c constraints-cpu.txt $PIP_TORCH pip setuptools wheel \
 && python -m pip install -q -c constraints-cpu.txt $PIP_TORCH torch \
 && python -m pip install -q -c constraints-cpu.txt $PIP_TORCH --no-build-isolation deepspeed \
 && python -m pip install -q -c constraints-cpu.txt $PIP_TORCH -e '.[s3,postgres,stack]'
COPY configs configs
COPY deployments deployments
# What the services write: run folders (the artifacts volume), the Dask certificates (the certs
# volume) and MLflow's store (the mlflow volume). A new named volume takes these folders' owner, so
# the user can write into it.
RUN mkdir -p artifacts certs mlflow && chown doughflow:doughflow artifacts certs mlflow
ENV DOUGHFLOW_HOME=/opt/doughflow PYTHONUNBUFFERED=1 HOME=/home/doughflow
USER doughflow:doughflow
