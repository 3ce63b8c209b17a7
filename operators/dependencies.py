"""Install the worker's dependencies (torch and friends) into the extension's user folder."""

from __future__ import annotations

import bpy

from ..blender import dependencies


class TALKINGHEAD_OT_install_dependencies(bpy.types.Operator):
    """Download PyTorch and the model's other packages with pip into the extension's folder (1-3 GB)"""

    bl_idname = "talking_head.install_dependencies"
    bl_label = "Install Dependencies"

    _process = None
    _timer = None
    _last_line = ""

    def execute(self, context):
        process = dependencies.start_install()
        output, _ = process.communicate()
        return self._done(process.returncode, output.decode(errors="replace"))

    def invoke(self, context, event):
        self._process = dependencies.start_install()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        self._output = []
        import threading

        threading.Thread(target=self._read, daemon=True).start()
        return {"RUNNING_MODAL"}

    def _read(self) -> None:
        for raw in self._process.stdout:
            self._output.append(raw.decode(errors="replace"))

    def modal(self, context, event):
        if event.type == "ESC":
            self._process.terminate()
            self._cleanup(context)
            self.report({"WARNING"}, "Talking Head: installation cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._output:
            context.workspace.status_text_set("Talking Head: " + self._output[-1].strip()[:120])
        if self._process.poll() is None:
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        return self._done(self._process.returncode, "".join(self._output))

    def _cleanup(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)

    def _done(self, code: int, output: str):
        if code != 0:
            tail = output.strip().splitlines()[-1] if output.strip() else f"exit code {code}"
            self.report({"ERROR"}, f"Talking Head: pip failed ({tail}); see the system console")
            print(output)
            return {"CANCELLED"}
        self.report({"INFO"}, "Talking Head: dependencies installed")
        return {"FINISHED"}


CLASSES = (TALKINGHEAD_OT_install_dependencies,)
