"""Where the OVMF tests find Debian's split OVMF images (the ovmf package)."""
import os

DEFAULT_DIR = "/usr/share/OVMF"


def ovmf_files(ovmf_dir=None):
    """(code, vars_template) in ovmf_dir, or None after printing why the
    test skips."""
    ovmf_dir = ovmf_dir or DEFAULT_DIR
    code = os.path.join(ovmf_dir, "OVMF_CODE_4M.fd")
    vars_template = os.path.join(ovmf_dir, "OVMF_VARS_4M.fd")
    for f in (code, vars_template):
        if not os.path.isfile(f):
            print(f"SKIP: {f} is missing (install Debian's ovmf package)")
            return None
    return code, vars_template
