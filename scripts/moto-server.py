"""moto's server (the sandbox's AWS API emulator), made to answer as AWS does where a runbook reads the result.

Usage: the arguments of moto_server (scripts/stack.sh and docker-compose.yml start it this way).

PromoteReadReplica: AWS clears the promoted instance's ReadReplicaSourceDBInstanceIdentifier and drops it from
its source's ReadReplicaDBInstanceIdentifiers. moto (5.2.5) keeps both, so DescribeDBInstances cannot tell a
promoted instance from a replica. drbook's promoteRdsReplica reads exactly that ("no longer a replica"): a worker
killed after its PromoteReadReplica call and before it could record the acceptance left a promotion nothing could
read back, and the next attempt promoted again (the chaos suite counted two promotions). With this patch the
sandbox shows what AWS shows, and the runbook's real check runs against it.

DescribeDBSnapshots: AWS answers at most MaxRecords (default 100) snapshots a page and a Marker for the next.
moto (5.2.5) returns every snapshot in one page and ignores MaxRecords and Marker, so a reader that stops after
one page (snapshot retention, the RDS restore test once did) looks correct here and misses snapshots on AWS.
Answered through moto's own paginator (the one its DescribeDBInstances uses, from botocore's paginator model:
MaxRecords in, Marker in and out), the sandbox pages as AWS does.

CreateMultipartUpload with Object Lock headers, and CopyDBSnapshot of an encrypted snapshot across regions
without a KmsKeyId: below.
"""

import contextvars
import sys

from moto.core.responses import PaginatedResult
from moto.core.utils import get_pagination_model
from moto.rds.exceptions import InvalidParameterValue
from moto.rds.models import RDSBackend
from moto.rds.responses import RDSResponse
from moto.s3.exceptions import LockNotEnabled
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.server import main

_promote_read_replica = RDSBackend.promote_read_replica


def promote_read_replica(self, db_kwargs):
    database = self.databases.get(db_kwargs.get("db_instance_identifier"))
    was_replica = database is not None and database.is_replica
    result = _promote_read_replica(self, db_kwargs)
    if was_replica and database.source_db_instance_identifier:
        try:
            source = self.find_db_from_id(database.source_db_instance_identifier)
        except Exception:  # the source is gone: nothing to detach from
            source = None
        if source is not None:
            # A cross-region replica is listed by ARN, a same-region one by identifier.
            gone = {database.db_instance_arn, database.db_instance_identifier}
            source.replicas = [r for r in source.replicas if r not in gone]
        database.source_db_instance_identifier = None
    return result


RDSBackend.promote_read_replica = promote_read_replica

_describe_db_snapshots = RDSResponse.describe_db_snapshots
# The paginator's Marker names the next page's first snapshot; moto's paging model (cached) lacks the attribute.
get_pagination_model("rds")["DescribeDBSnapshots"].setdefault("unique_attribute", "db_snapshot_identifier")


def describe_db_snapshots(self):
    return PaginatedResult(_describe_db_snapshots(self).result)


RDSResponse.describe_db_snapshots = describe_db_snapshots

# CreateMultipartUpload with Object Lock: AWS locks the object the upload completes into with the mode and
# retain-until date given when the upload was created (and refuses them on a bucket without Object Lock). moto
# (5.2.5) reads those headers on PutObject only, so every backup object big enough for a multipart upload came
# out unlocked. These wrappers carry the headers from the request to the upload, and from it to the object.
_lock_headers = contextvars.ContextVar("lock_headers", default=None)
_key_response_post = S3Response._key_response_post
_create_multipart_upload = S3Backend.create_multipart_upload
_complete_multipart_upload = S3Backend.complete_multipart_upload


def key_response_post(self, request, body, bucket_name, query, key_name):
    mode = request.headers.get("x-amz-object-lock-mode")
    until = request.headers.get("x-amz-object-lock-retain-until-date")
    legal_hold = request.headers.get("x-amz-object-lock-legal-hold")
    token = _lock_headers.set((mode, until, legal_hold) if "uploads" in query else None)
    try:
        return _key_response_post(self, request, body, bucket_name, query, key_name)
    finally:
        _lock_headers.reset(token)


def create_multipart_upload(self, bucket_name, key_name, *args, **kwargs):
    mode, until, legal_hold = _lock_headers.get() or (None, None, None)
    if (mode or until or legal_hold == "ON") and not self.get_bucket(bucket_name).object_lock_enabled:
        raise LockNotEnabled()
    multipart = _create_multipart_upload(self, bucket_name, key_name, *args, **kwargs)
    multipart.drbook_lock = (mode, until, legal_hold)
    return multipart


def complete_multipart_upload(self, bucket_name, multipart_id, body):
    multipart = self.get_bucket(bucket_name).multiparts.get(multipart_id)
    key = _complete_multipart_upload(self, bucket_name, multipart_id, body)
    mode, until, legal_hold = getattr(multipart, "drbook_lock", (None, None, None))
    if key is not None and (mode or until or legal_hold):
        key.lock_mode, key.lock_until, key.lock_legal_status = mode, until, legal_hold
    return key


S3Response._key_response_post = key_response_post
S3Backend.create_multipart_upload = create_multipart_upload
S3Backend.complete_multipart_upload = complete_multipart_upload

# CopyDBSnapshot of an encrypted snapshot into another region: AWS refuses it without a KmsKeyId of the
# destination region ("Must specify new KMS key for cross region encrypted snapshot copy."): a KMS key never
# leaves its region. moto (5.2.5) copied it anyway, so a runbook that forgot the key passed here and failed on AWS.
_copy_db_snapshot = RDSBackend.copy_db_snapshot


def copy_db_snapshot(self, source_db_snapshot_identifier, target_db_snapshot_identifier, kms_key_id=None, **kwargs):
    arn = source_db_snapshot_identifier.split(":")
    cross_region = len(arn) > 3 and arn[0] == "arn" and arn[3] != self.region_name
    if cross_region and kms_key_id is None:
        source = self.get_db_snapshot(source_db_snapshot_identifier)
        if source.encrypted or source.storage_encrypted:
            raise InvalidParameterValue("Must specify new KMS key for cross region encrypted snapshot copy.")
    return _copy_db_snapshot(
        self, source_db_snapshot_identifier, target_db_snapshot_identifier, kms_key_id=kms_key_id, **kwargs
    )


RDSBackend.copy_db_snapshot = copy_db_snapshot

if __name__ == "__main__":
    sys.exit(main())
