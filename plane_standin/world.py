"""The stand-in's workspace: installation, members, work items, comments, agent runs.

Every method takes the world's re-entrant lock, and callers that need several steps
to happen together hold `world.lock` around them.
"""

import copy
import threading
import uuid
from dataclasses import dataclass

from . import defaults, payloads
from .config import StandInConfig
from .runbook import AgentRunBook
from .tokens import TokenStore


@dataclass
class Installation:
    """An app installation: its API record and whether its webhook still sends."""

    record: dict
    webhook_active: bool = True

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def is_installed(self) -> bool:
        return self.record["status"] == "installed"


class World:
    """In-memory state of one Plane workspace and the app's installations in it."""

    def __init__(self, config: StandInConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = self.config.clock
        self.tokens = TokenStore(self.clock, self.config.token_lifetime)
        self.workspace = {
            "name": defaults.WORKSPACE_NAME,
            "slug": self.config.workspace_slug,
            "id": self.config.workspace_id,
            "logo_url": None,
        }
        slug = self.config.workspace_slug
        self.bot = defaults.user_lite(
            defaults.BOT_USER_ID,
            defaults.APP_NAME,
            "",
            f"{slug}_{defaults.APP_SLUG}_bot@plane.so",
        )
        self.users = {
            defaults.INSTALLER_USER_ID: defaults.INSTALLER,
            defaults.MEMBER_USER_ID: defaults.MEMBER,
            defaults.BOT_USER_ID: self.bot,
        }
        self.bot_active = True
        self.installations: dict[str, Installation] = {}
        self.consents: list[dict] = []
        self.created_comments: list[dict] = []
        self.deliveries: list[dict] = []
        self.agent_runs = AgentRunBook(self)
        self._seed()

    def _seed(self) -> None:
        replacements = self.config.id_replacements()
        project = payloads.fixture("project.created")["data"]
        work_item = payloads.fixture("issue.created")["data"]
        comment = payloads.fixture("issue_comment.created")["data"]
        self.projects = {project["id"]: payloads.rebind_ids(project, replacements)}
        self.work_items = {
            work_item["id"]: payloads.rebind_ids(work_item, replacements)
        }
        self.comments = {comment["id"]: payloads.rebind_ids(comment, replacements)}
        self._work_item_template = copy.deepcopy(self.work_items[work_item["id"]])
        self._next_sequence_id = work_item["sequence_id"] + 1
        if self.config.preinstalled:
            self._create_installation(self.config.installation_id, defaults.WEBHOOK_ID)

    def now_text(self) -> str:
        return payloads.format_timestamp(self.clock())

    # Installations

    def _create_installation(self, installation_id: str, webhook_id: str) -> None:
        timestamp = self.now_text()
        record = {
            "id": installation_id,
            "workspace_detail": dict(self.workspace),
            "created_at": timestamp,
            "updated_at": timestamp,
            "deleted_at": None,
            "status": "installed",
            "created_by": defaults.INSTALLER_USER_ID,
            "updated_by": None,
            "workspace": self.config.workspace_id,
            "application": defaults.APPLICATION_ID,
            "installed_by": defaults.INSTALLER_USER_ID,
            "app_bot": defaults.BOT_USER_ID,
            "webhook": webhook_id,
        }
        self.installations[installation_id] = Installation(record)
        self.bot_active = True

    def install(self) -> Installation:
        """Consent: return the live installation, or create one reusing the bot.

        Whether Plane reuses the id of an uninstalled installation is not known.
        This world gives a reinstall a new installation id and webhook id.
        """
        with self.lock:
            current = self.current_installation()
            if current is not None and current.is_installed:
                current.record["updated_at"] = self.now_text()
                return current
            if current is None:
                self._create_installation(
                    self.config.installation_id, defaults.WEBHOOK_ID
                )
            else:
                self._create_installation(str(uuid.uuid4()), str(uuid.uuid4()))
            return self.current_installation()

    def current_installation(self) -> Installation | None:
        """Return the most recent installation, live or not."""
        with self.lock:
            return next(reversed(self.installations.values()), None)

    def installed(self, installation_id: str | None) -> Installation | None:
        """Return the installation if it exists and its status is `installed`."""
        with self.lock:
            installation = self.installations.get(installation_id or "")
            return installation if installation and installation.is_installed else None

    def uninstall(self, installation_id: str) -> dict:
        """Uninstall as Plane does, and return the notice to post.

        Raises KeyError for an unknown or already uninstalled installation.
        """
        with self.lock:
            installation = self.installed(installation_id)
            if installation is None:
                raise KeyError(f"No installed installation {installation_id!r}.")
            timestamp = self.now_text()
            installation.record.update(
                status="uninstalled", updated_at=timestamp, deleted_at=timestamp
            )
            installation.webhook_active = False
            self.tokens.end_installation(installation_id, revoke_access=False)
            self.bot_active = False
            return payloads.uninstall_notice(
                workspace_id=self.config.workspace_id,
                application_id=defaults.APPLICATION_ID,
                installation_id=installation_id,
            )

    # Work items and comments

    def add_work_item(self, name: str, creator_id: str) -> dict:
        """Create a work item in the seeded project, with the next sequence id."""
        with self.lock:
            item = copy.deepcopy(self._work_item_template)
            timestamp = self.now_text()
            item.update(
                id=str(uuid.uuid4()),
                labels=[],
                assignees=[],
                created_at=timestamp,
                updated_at=timestamp,
                name=name,
                description_html="<p></p>",
                description_stripped="",
                priority="none",
                target_date=None,
                sequence_id=self._next_sequence_id,
                last_activity_at=timestamp,
                created_by=creator_id,
                updated_by=None,
            )
            self._next_sequence_id += 1
            self.work_items[item["id"]] = item
            return copy.deepcopy(item)

    def add_comment(
        self,
        work_item: dict,
        comment_html: str,
        actor_id: str,
        *,
        access: str = "INTERNAL",
        external_source: str | None = None,
        external_id: str | None = None,
        parent: str | None = None,
    ) -> dict:
        """Create a comment on a work item and return a copy of it."""
        with self.lock:
            timestamp = self.now_text()
            comment = {
                "id": str(uuid.uuid4()),
                "created_at": timestamp,
                "updated_at": timestamp,
                "deleted_at": None,
                "comment_stripped": payloads.strip_html(comment_html),
                "comment_html": comment_html,
                "attachments": [],
                "access": access,
                "external_source": external_source,
                "external_id": external_id,
                "edited_at": None,
                "created_by": actor_id,
                "updated_by": None,
                "project": work_item["project"],
                "workspace": work_item["workspace"],
                "description": str(uuid.uuid4()),
                "issue": work_item["id"],
                "actor": actor_id,
                "parent": parent,
                "source": None,
            }
            self.comments[comment["id"]] = comment
            return copy.deepcopy(comment)

    def comments_of(self, work_item_id: str) -> list[dict]:
        """Return copies of a work item's comments, newest first as Plane lists them."""
        with self.lock:
            ordered = [c for c in self.comments.values() if c["issue"] == work_item_id]
            return copy.deepcopy(ordered[::-1])

    def find_external_comment(
        self, project_id: str, external_source: str, external_id: str
    ) -> dict | None:
        """Return the project's comment with this external source and id, if any."""
        with self.lock:
            for comment in self.comments.values():
                if (
                    comment["project"] == project_id
                    and comment["external_source"] == external_source
                    and comment["external_id"] == external_id
                ):
                    return comment
            return None

    def update_comment(
        self, comment_id: str, fields: dict, actor_id: str
    ) -> tuple[dict, dict]:
        """Apply edits to a comment. Return a copy and the changes by field."""
        with self.lock:
            comment = self.comments[comment_id]
            changes = {
                key: (comment[key], value)
                for key, value in fields.items()
                if comment[key] != value
            }
            if not changes:
                return copy.deepcopy(comment), changes
            comment.update(fields)
            timestamp = self.now_text()
            comment.update(updated_at=timestamp, updated_by=actor_id)
            if "comment_html" in changes:
                comment["comment_stripped"] = payloads.strip_html(
                    fields["comment_html"]
                )
                comment["edited_at"] = timestamp
            return copy.deepcopy(comment), changes

    def delete_comment(self, comment_id: str) -> None:
        with self.lock:
            del self.comments[comment_id]
