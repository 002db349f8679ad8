# doughflow worker image: the pipeline code and its pinned CPU dependencies.
# GPU hosts: build FROM an nvidia/cuda base and drop the CPU torch index.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/doughflow
COPY pyproject.toml constraints-cpu.txt README.md ./
COPY doughflow doughflow
COPY flows flows
COPY tasks tasks
ENV PIP_TORCH="--extra-index-url https://download.pytorch.org/whl/cpu"
RUN python -m pip install -q -c constraints-cpu.txt $PIP_TORCH pip setuptools wheel \
 && python -m pip install -q -c constraints-cpu.txt $PIP_TORCH torch \
 && python -m pip install -q -c constraints-cpu.txt $PIP_TORCH --no-build-isolation deepspeed \
 && python -m pip install -q -c constraints-cpu.txt $PIP_TORCH -e '.[s3,postgres]'
COPY configs configs
COPY deployments deployments
ENV DOUGHFLOW_HOME=/opt/doughflow PYTHONUNBUFFERED=1
