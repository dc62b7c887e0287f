# The bridge's Airflow image: the official Airflow 3 image extended with the
# pinned requirements (the pattern of Airflow's "Customizing the image" docs).
# Build: docker build -t oa-crm-bridge:0.1.0 .
FROM apache/airflow:3.3.2-python3.11

# Chinese fonts for the report charts (matplotlib renders empty boxes without them).
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt constraints.txt /opt/airflow/requirements/
RUN pip install --no-cache-dir "apache-airflow==3.3.2" \
      -r /opt/airflow/requirements/requirements.txt \
      -c /opt/airflow/requirements/constraints.txt

# The project lives at /opt/airflow (= AIRFLOW_HOME): dags/, plugins/, include/,
# sandbox/. docker-compose mounts dags/, plugins/ and include/ over these copies
# during development; the editable install registers the `bridge` CLI and the
# provider entry point (connection types) against /opt/airflow/plugins either way.
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root sandbox /opt/airflow/sandbox
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

ENV BRIDGE_DATA_DIR=/opt/airflow/data \
    BRIDGE_INCLUDE_DIR=/opt/airflow/include
