"""The web process and the Procfile's worker share one job serializer.

Covers the serializer-mismatch regression case: JSON jobs that ``rq info`` and
``Job.fetch`` read, raw bodies that survive byte for byte, and bytes refused.
"""

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.procfile import read_procfile
from shared import queues
from shared.errors import JobArgumentError
from tests.conftest import make_installation
from tests.delivery_flow import worker_context
from workers.pool import PlaneWorker

BODY_B = (Path(__file__).parent / "fixtures" / "cases" / "body-b.json").read_bytes()


def test_procfile_worker_uses_the_project_worker():
    assert read_procfile()["worker"] == "python -m workers"
    assert PlaneWorker.__init__.__module__ == "workers.pool"


def test_worker_class_reads_json_jobs(redis_conn):
    worker = PlaneWorker(
        [queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)], connection=redis_conn
    )

    assert worker.serializer is queues.SERIALIZER


def test_raw_body_round_trips_byte_for_byte(redis_conn):
    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    job = queues.enqueue(
        queue,
        queues.DELIVERY_JOB,
        args=(queues.encode_body(BODY_B), "5c0d1e2f-0000-4000-8000-000000001101", 0.0),
        description="serializer check",
        job_timeout=30,
    )

    fetched = queues.fetch_job(job.id, redis_conn)
    body = queues.decode_body(fetched.args[0])
    assert (
        hashlib.sha256(body).hexdigest()
        == "69fbac318450d28ee1dd5ae44e6f3fb2b091196dd193f3842b3febea4d4bcd5f"
    )


def test_rq_info_reads_jobs(redis_url, redis_conn):
    queues.enqueue(
        queues.get_queue(queues.DELIVERY_QUEUE, redis_conn),
        queues.DELIVERY_JOB,
        args=(queues.encode_body(BODY_B), "delivery", 0.0),
        description="serializer check",
        job_timeout=30,
    )
    rq_command = Path(sys.executable).parent / "rq"

    result = subprocess.run(
        [
            str(rq_command),
            "info",
            "--serializer",
            queues.SERIALIZER_PATH,
            "-u",
            redis_url,
            "deliveries",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert "deliveries" in result.stdout


@pytest.mark.parametrize("value", [BODY_B, bytearray(BODY_B), memoryview(BODY_B)])
def test_raw_bytes_are_refused(redis_conn, value):
    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)

    with pytest.raises(JobArgumentError, match="encode_body"):
        queues.enqueue(
            queue,
            queues.DELIVERY_JOB,
            args=(value,),
            description="bytes",
            job_timeout=30,
        )

    assert queue.count == 0


def test_delivery_job_runs_body_b(redis_url, redis_conn, standin):
    context = worker_context(redis_url, redis_conn, standin)
    workspace_id = json.loads(BODY_B)["workspace_id"]
    context.store.save(
        dataclasses.replace(make_installation(), workspace_id=workspace_id)
    )
    work_items = []

    @context.registry.on("issue", "updated")
    def record(event, plane):
        work_items.append(event.data["id"])

    queue = queues.get_queue(queues.DELIVERY_QUEUE, redis_conn)
    job = queues.enqueue(
        queue,
        queues.DELIVERY_JOB,
        args=(queues.encode_body(BODY_B), "5c0d1e2f-0000-4000-8000-000000001101", 0.0),
        description="case body b",
        job_timeout=30,
    )
    PlaneWorker([queue], connection=redis_conn).work(burst=True)

    assert job.get_status(refresh=True).value == "finished"
    assert work_items == [json.loads(BODY_B)["data"]["id"]]
