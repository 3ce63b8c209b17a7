"""Install the worker's dependencies (torch and friends) into the add-on's own folder, or remove them."""

from __future__ import annotations

import bpy

from ..blender import dependencies
from ..core.errors import TalkingHeadError


class TALKINGHEAD_OT_install_dependencies(bpy.types.Operator):
    """Download PyTorch and the model's other packages with pip into the add-on's folder (1-3 GB).
    Needs 'Allow Online Access' (Preferences > System > Network)"""

    bl_idname = "talking_head.install_dependencies"
    bl_label = "Install Dependencies"

    _installation = None
    _timer = None

    def _start(self) -> bool:
        try:
            self._installation = dependencies.start_install()
        except TalkingHeadError as exc:
            self.report({"ERROR"}, f"Talking Head: {exc}")
            return False
        return True

    def execute(self, context):
        if not self._start():
            return {"CANCELLED"}
        self._installation.wait()
        return self._done()

    def invoke(self, context, event):
        if not self._start():
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._installation.cancel()
            self._installation.wait(30)
            self._cleanup(context)
            self.report({"WARNING"}, "Talking Head: installation cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        line = self._installation.last_line
        if line and context.workspace is not None:
            context.workspace.status_text_set("Talking Head (Esc cancels): " + line[:120])
        if not self._installation.done:
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        return self._done()

    def _cleanup(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        if context.workspace is not None:
            context.workspace.status_text_set(None)

    def _done(self):
        installation = self._installation
        if installation.error:
            self.report({"ERROR"}, f"Talking Head: {installation.error} (the full pip output is in the system console)")
            print("".join(installation.output))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Talking Head: dependencies installed into {installation.plan.target}")
        return {"FINISHED"}


class TALKINGHEAD_OT_remove_dependencies(bpy.types.Operator):
    """Delete the packages Install Dependencies put in the add-on's own folder (never a 'Python with torch' environment)"""

    bl_idname = "talking_head.remove_dependencies"
    bl_label = "Remove Dependencies"

    def invoke(self, context, event):
        folders = [folder for folder in dependencies.install_folders() if folder.is_dir()]
        if not folders:
            self.report({"INFO"}, "Talking Head: no installed dependencies to remove")
            return {"CANCELLED"}
        message = "Delete " + ", ".join(str(folder) for folder in folders) + "?"
        try:
            return context.window_manager.invoke_confirm(self, event, title="Remove Dependencies", message=message, icon="WARNING")
        except TypeError:  # keywords arrived in Blender 4.1
            return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        try:
            removed = dependencies.remove_installed()
        except TalkingHeadError as exc:
            self.report({"ERROR"}, f"Talking Head: {exc}")
            return {"CANCELLED"}
        if not removed:
            self.report({"INFO"}, "Talking Head: no installed dependencies to remove")
            return {"CANCELLED"}
        self.report({"INFO"}, "Talking Head: removed " + ", ".join(str(folder) for folder in removed))
        return {"FINISHED"}


CLASSES = (TALKINGHEAD_OT_install_dependencies, TALKINGHEAD_OT_remove_dependencies)
