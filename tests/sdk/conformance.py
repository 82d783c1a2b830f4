#!/usr/bin/env python3
"""Drives a running simulated tenant with the official SailPoint Python SDK
(`sailpoint` 1.4.x, module `sailpoint.v2024`, `TaskManagementApi`) and asserts
contract-true answers parsed into the SDK's own models.

Configuration (environment):
  SAIL_BASE_URL       e.g. http://127.0.0.1:11012 (the SDK appends /v2024)
  SAIL_CLIENT_ID      client id
  SAIL_CLIENT_SECRET  client secret (never passed on the command line)
  SIM_TRUTH           optional path to a JSON array of every task (the simulator's
                      ground truth, as `SimHandle::tasks()` renders it). With it, ids,
                      orders and counts are compared exactly; without it only
                      self-consistency is checked.
The tenant must not change while this runs (use a manual clock) and must have at
least two pending and three completed tasks. Exits non-zero on the first failure.
"""

import json
import os
import sys
import warnings

# Any value outside the SDK's enums is a conformance failure, not a warning.
warnings.filterwarnings("error", message=".*must be one of enum values.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import pydantic  # noqa: E402
from sailpoint.configuration import Configuration, ConfigurationParams  # noqa: E402
from sailpoint.v2024.api.task_management_api import TaskManagementApi  # noqa: E402
from sailpoint.v2024.api_client import ApiClient  # noqa: E402
from sailpoint.v2024.exceptions import ApiException  # noqa: E402
from sailpoint.v2024.models.error_response_dto import ErrorResponseDto  # noqa: E402
from sailpoint.v2024.models.json_patch_operation import JsonPatchOperation  # noqa: E402
from sailpoint.v2024.models.task_status import TaskStatus  # noqa: E402
from sailpoint.v2024.models.update_multi_host_sources_request_inner_value import (  # noqa: E402
    UpdateMultiHostSourcesRequestInnerValue,
)

CHECKS = 0


def check(condition, what):
    global CHECKS
    CHECKS += 1
    if not condition:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def expect_api_error(status, call, what):
    try:
        call()
    except ApiException as e:
        check(e.status == status, f"{what}: status {e.status}, want {status}")
        return e
    check(False, f"{what}: no error raised, want HTTP {status}")


def error_dto(e, detail_code, what):
    dto = ErrorResponseDto.from_json(e.body)
    check(dto.detail_code == detail_code, f"{what}: detailCode {dto.detail_code!r}")
    check(dto.tracking_id and len(dto.tracking_id) == 32, f"{what}: trackingId")
    check(dto.messages and dto.messages[-1].text, f"{what}: messages")
    return dto


def total(resp):
    """X-Total-Count of an ApiResponse (the SDK hands headers over as a plain dict)."""
    found = [v for k, v in resp.headers.items() if k.lower() == "x-total-count"]
    check(len(found) == 1, f"exactly one X-Total-Count header in {dict(resp.headers)}")
    return int(found[0])


def all_pending(api):
    tasks, offset = [], 0
    while True:
        page = api.get_pending_tasks(offset=offset, limit=250)
        if not page:  # 204 -> None
            return tasks
        check(all(isinstance(t, TaskStatus) for t in page), "pending items are TaskStatus")
        tasks.extend(page)
        offset += len(page)


def main():
    base_url = os.environ["SAIL_BASE_URL"]
    params = ConfigurationParams()
    params.base_url = base_url
    params.client_id = os.environ["SAIL_CLIENT_ID"]
    params.client_secret = os.environ["SAIL_CLIENT_SECRET"]
    config = Configuration(params)
    check(config.access_token, "the SDK fetched a token from /oauth/token")
    api = TaskManagementApi(ApiClient(config))

    truth = None
    if os.environ.get("SIM_TRUTH"):
        with open(os.environ["SIM_TRUTH"]) as f:
            truth = json.load(f)
        for raw in truth:  # the ground truth itself must fit the SDK model
            TaskStatus.from_dict(raw)

    # --- pending tasks and their count -------------------------------------------
    pending = all_pending(api)
    check(len(pending) >= 2, "at least two pending tasks")
    check(all(t.completion_status is None and t.completed is None for t in pending),
          "pending tasks have null completionStatus and completed")
    created = [t.created for t in pending]
    check(created == sorted(created), "pending tasks come oldest first")
    resp = api.get_pending_task_headers_with_http_info(count=True)
    check(resp.status_code == 200, f"HEAD pending status {resp.status_code}")
    check(total(resp) == len(pending), "HEAD X-Total-Count = pending tasks")
    resp = api.get_pending_tasks_with_http_info(count=True, limit=1)
    check(len(resp.data) == 1 and total(resp) == len(pending),
          "GET pending limit=1 count=true")

    # --- completed list, sorters both ways ---------------------------------------
    resp = api.get_task_status_list_with_http_info(limit=250, count=True, sorters="created")
    ascending = resp.data
    total_completed = total(resp)
    check(all(t.completion_status in {"SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR"}
              for t in ascending), "the list holds completed tasks only")
    check([t.created for t in ascending] == sorted(t.created for t in ascending),
          "sorters=created is ascending")
    descending = api.get_task_status_list(limit=250, sorters="-created")
    check([t.created for t in descending] == sorted((t.created for t in descending), reverse=True),
          "sorters=-created is descending")
    if total_completed <= 250:
        check([t.id for t in descending] == [t.id for t in reversed(ascending)],
              "the two sort orders are mirror images")

    if truth is not None:
        truth_pending = [t["id"] for t in truth if t["completionStatus"] is None]
        truth_done = [t for t in truth if t["completionStatus"] is not None]
        check([t.id for t in pending] == truth_pending, "pending ids and order = ground truth")
        check(total_completed == len(truth_done), "X-Total-Count of the list = ground truth")
        check([t.id for t in ascending] == [t["id"] for t in truth_done][:250],
              "ascending ids = ground truth")
        check([t.id for t in descending] == [t["id"] for t in reversed(truth_done)][:250],
              "descending ids = ground truth")

    # --- filters ------------------------------------------------------------------
    a, b = ascending[1], ascending[2]
    got = api.get_task_status_list(filters=f'id eq "{a.id}"')
    check([t.id for t in got] == [a.id], "id eq")
    got = api.get_task_status_list(filters=f'id in ("{b.id}","{a.id}")', sorters="created")
    check([t.id for t in got] == [a.id, b.id], "id in, ascending")

    statuses = {}
    for status in ["SUCCESS", "WARNING", "ERROR", "TERMINATED", "TEMPERROR"]:
        resp = api.get_task_status_list_with_http_info(
            filters=f'completionStatus eq "{status.capitalize()}"', count=True, limit=250)
        statuses[status] = total(resp)
        check(all(t.completion_status == status for t in resp.data), f"completionStatus eq {status}")
    check(sum(statuses.values()) == total_completed, "status counts add up to the total")
    resp = api.get_task_status_list_with_http_info(
        filters='completionStatus in ("ERROR","WARNING")', count=True)
    check(total(resp) == statuses["ERROR"] + statuses["WARNING"],
          "completionStatus in")
    if truth is not None:
        for status, n in statuses.items():
            want = sum(1 for t in truth if t["completionStatus"] == status)
            check(n == want, f"{status} count = ground truth ({n} vs {want})")

    # --- one task, 404 ------------------------------------------------------------
    one = api.get_task_status(id=a.id)
    check(one == a, "get_task_status = the listed task")
    e = expect_api_error(404, lambda: api.get_task_status(id="0" * 32), "unknown id")
    error_dto(e, "404 Not found", "404 body")

    # --- PATCH a pending task -----------------------------------------------------
    victim = pending[0]
    patch = [
        JsonPatchOperation(op="replace", path="/completionStatus",
                           value=UpdateMultiHostSourcesRequestInnerValue("Error")),
        JsonPatchOperation(op="replace", path="/completed",
                           value=UpdateMultiHostSourcesRequestInnerValue("2024-05-17T19:33:16.470Z")),
    ]
    updated = api.update_task_status(id=victim.id, json_patch_operation=patch)
    check(updated.id == victim.id and updated.completion_status == "ERROR", "PATCH result status")
    check(updated.completed.isoformat().startswith("2024-05-17T19:33:16.470"), "PATCH result completed")
    after = all_pending(api)
    check([t.id for t in after] == [t.id for t in pending[1:]], "the patched task left the pending list")
    resp = api.get_pending_task_headers_with_http_info(count=True)
    check(total(resp) == len(pending) - 1, "pending count dropped by one")
    check(api.get_task_status(id=victim.id).completion_status == "ERROR", "GET shows the patch")

    # --- 400s ---------------------------------------------------------------------
    try:
        api.get_task_status_list(limit=251)
        check(False, "the SDK itself refuses limit=251")
    except pydantic.ValidationError:
        check(True, "the SDK itself refuses limit=251")
    raw = api.api_client.call_api(
        "GET", f"{base_url}/v2024/task-status?limit=251",
        header_params={"Authorization": f"Bearer {config.access_token}", "Accept": "application/json"})
    raw.read()
    check(raw.status == 400, f"limit=251 status {raw.status}")
    dto = ErrorResponseDto.from_json(raw.data.decode())
    check(dto.detail_code == "400.1 Bad Request Content" and "limit" in dto.messages[-1].text,
          "limit=251 ErrorResponseDto")
    e = expect_api_error(400, lambda: api.get_task_status_list(filters='name eq "x"'), "unknown filter field")
    dto = error_dto(e, "400.1 Bad Request Content", "unknown field body")
    check("name" in dto.messages[-1].text, "the 400 names the field")
    expect_api_error(400, lambda: api.get_task_status_list(sorters="name"), "bad sorter")

    # --- 401 ----------------------------------------------------------------------
    bad = ConfigurationParams()
    bad.base_url = base_url
    bad.access_token = "not-a-token"
    bad_api = TaskManagementApi(ApiClient(Configuration(bad)))
    e = expect_api_error(401, lambda: bad_api.get_pending_tasks(), "bad token")
    check(json.loads(e.body)["error"].startswith("JWT validation failed"), "401 body {error}")

    print(f"SDK conformance: {CHECKS} checks passed")


if __name__ == "__main__":
    main()
