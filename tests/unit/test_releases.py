"""The NGC -> Triton -> TensorRT table: one source, the chart's copy identical, lookups that name what is known."""

import subprocess
import sys

import pytest

from export.errors import ExportError
from export.releases import default_release, get_release, releases
from support import ROOT


def test_chart_copy_is_identical_to_the_export_table():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_releases.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_default_release_is_listed_and_pairs_images_of_the_same_release():
    release = default_release()
    assert release.ngc in releases()
    assert release.triton_image.endswith(f":{release.ngc}-py3")
    assert release.builder_base_image.endswith(f":{release.ngc}-py3")


def test_unknown_release_lists_known_ones():
    with pytest.raises(ExportError, match=r"Unknown NGC release `99.99`\. Known: 24\.10, .*26\.07"):
        get_release("99.99")
