"""Run `distill kd` and SIGKILL the process right after training step KILL_AT, as a crash would.

python tests/kd_kill.py CONFIG_JSON INPUT OUTPUT KILL_AT
"""

import json
import os
import signal
import sys
from pathlib import Path

import distill.kd.trainer as trainer
from distill.kd.config import KDConfig
from distill.kd.stage import run


class KillingMetricsFile(trainer.KDMetricsFile):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    trainer.KDMetricsFile = KillingMetricsFile
    run(KDConfig(**json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3]), threads=1)
