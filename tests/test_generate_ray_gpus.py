"""`--executor ray` reserves an engine's TP x PP GPUs per shard (review N15): a task asking for TP GPUs on one node
while vLLM's Ray executor needs TP x PP more for its workers never starts on a two-node H100 cluster."""

import pytest

from distill import rehearsal
from distill.generate.config import GenerateConfig
from distill.generate.stage import ray_options
from tests import rehearsals

PIPELINES = rehearsals.ROOT / "pipelines"


def test_a_pipeline_parallel_engine_reserves_tp_x_pp_gpus_and_a_one_node_engine_tp():
    assert ray_options(GenerateConfig(**rehearsal.shipped(PIPELINES / "r1_generate_h100.yaml"))) == {"gpu_bundles": 16}
    assert ray_options(GenerateConfig(**rehearsal.shipped(PIPELINES / "r1_generate.yaml"))) == {"num_gpus": 8}


@pytest.mark.slow
def test_the_shard_task_runs_in_a_group_of_tp_x_pp_gpus_its_engine_workers_take(tmp_path):
    """On a Ray cluster with 16 (logical) GPUs: the shard task holds none, and 16 one-GPU workers, as vLLM's Ray
    executor starts for TP 8 x PP 2, are placed in its group (vLLM uses the current placement group)."""
    ray = pytest.importorskip("ray")
    from distill.stage import ray_shard_options

    ray.init(num_cpus=2, num_gpus=16, include_dashboard=False, log_to_driver=False)
    try:
        options, group = ray_shard_options({"gpu_bundles": 16})

        @ray.remote
        def worker():
            return ray.get_runtime_context().get_assigned_resources().get("GPU", 0)

        @ray.remote
        def shard():
            current = ray.util.get_current_placement_group()
            bundles = [b.get("GPU", 0) for b in current.bundle_specs]
            workers = ray.get([worker.options(num_gpus=1, num_cpus=0, placement_group_bundle_index=k).remote() for k in range(16)])
            return bundles, ray.get_runtime_context().get_assigned_resources().get("GPU", 0), workers

        bundles, own_gpus, workers = ray.get(shard.options(**options).remote())
        ray.util.remove_placement_group(group)
    finally:
        ray.shutdown()
    assert bundles == [1] * 16 and own_gpus == 0 and workers == [1] * 16
