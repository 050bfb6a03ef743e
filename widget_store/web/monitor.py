"""What the operator sees of DBOS: workflows in flight and each one's recorded steps."""

from __future__ import annotations

from datetime import UTC, datetime

from dbos import DBOS

from .schemas import StepOut, WorkflowOut


def _when(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


async def list_workflows(*, status: str | None, limit: int) -> list[WorkflowOut]:
    """Newest first; the current step is looked up only for workflows still running."""
    found = await DBOS.list_workflows_async(
        status=status, limit=limit, sort_desc=True, load_input=False, load_output=False
    )
    out = []
    for wf in found:
        current = None
        if wf.status == "PENDING":
            steps = await DBOS.list_workflow_steps_async(wf.workflow_id, load_output=False)
            current = steps[-1]["function_name"] if steps else None
        out.append(
            WorkflowOut(
                workflow_id=wf.workflow_id,
                name=wf.name,
                status=wf.status,
                created_at=_when(wf.created_at),
                updated_at=_when(wf.updated_at),
                recovery_attempts=wf.recovery_attempts,
                recoveries=None
                if wf.recovery_attempts is None
                else max(0, wf.recovery_attempts - 1),
                executor_id=wf.executor_id,
                current_step=current,
            )
        )
    return out


async def workflow_steps(workflow_id: str) -> list[StepOut] | None:
    """The steps recorded so far, in order; None for an unknown workflow."""
    if await DBOS.get_workflow_status_async(workflow_id) is None:
        return None
    return [
        StepOut(
            step_id=step["function_id"],
            name=step["function_name"],
            output=_jsonable(step["output"]),
            error=None if step["error"] is None else repr(step["error"]),
            child_workflow_id=step["child_workflow_id"],
            started_at=_when(step["started_at_epoch_ms"]),
            completed_at=_when(step["completed_at_epoch_ms"]),
        )
        for step in await DBOS.list_workflow_steps_async(workflow_id)
    ]


def _jsonable(value: object) -> object:
    """Step outputs are whatever the step returned; tuples and the like become plain JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return repr(value)
