"""Fail if the installed environment is inconsistent (pip check), except the two known,
harmless torchattacks lines (see requirements/README.md)."""
import subprocess
import sys

out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
known = ("torchattacks 3.5.1 requires torchvision", "torchattacks 3.5.1 has requirement requests")
problems = [line for line in out.splitlines()
            if line.strip() and not line.startswith(known) and "No broken requirements" not in line]
if problems:
    sys.exit("environment is inconsistent:\n" + "\n".join(problems))
import torch  # noqa: E402

if torch.__version__.split("+")[0] != "2.13.0" or torch.cuda.is_available():
    sys.exit(f"expected the CPU build of torch 2.13.0, found {torch.__version__}")
