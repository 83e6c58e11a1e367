"""State-space layers with a fast scan in pure PyTorch."""

from graftkit.hybrid.ssm.config import KINDS, SSMConfig
from graftkit.hybrid.ssm.layer import S4DSSM, SelectiveSSM, SSDSSM, build_ssm
from graftkit.hybrid.ssm.scan import SCANS, scan_chunked, scan_parallel, scan_sequential
from graftkit.hybrid.ssm.ssd import ssd_chunked, ssd_scan, ssd_sequential

__all__ = ["KINDS", "SCANS", "S4DSSM", "SSDSSM", "SSMConfig", "SelectiveSSM", "build_ssm", "scan_chunked",
           "scan_parallel", "scan_sequential", "ssd_chunked", "ssd_scan", "ssd_sequential"]
