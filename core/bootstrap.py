"""Python source that runs a module of this package in a fresh interpreter, with this folder's code
imported as `talking_head` wherever the folder lives and whatever it is called (Blender installs
the extension as `.../extensions/<repo>/talking_head`). Used for the worker and the Alembic reader."""


def bootstrap(module: str) -> str:
    """Source for `python -c SOURCE ROOT ARGS...` that runs `talking_head.<module>.main(ARGS)`."""
    return f"""
import importlib.util, sys
root = sys.argv[1]
spec = importlib.util.spec_from_file_location("talking_head", root + "/__init__.py", submodule_search_locations=[root])
package = importlib.util.module_from_spec(spec)
sys.modules["talking_head"] = package
spec.loader.exec_module(package)
from talking_head.{module} import main
raise SystemExit(main(sys.argv[2:]))
"""
