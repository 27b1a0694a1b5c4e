"""boto3 against Hypha's S3 endpoint (run by tests/s3_clients.rs).

Buckets, objects with metadata, Range and conditional GETs, CopyObject,
multipart through boto3's transfer manager, presigned GET and PUT URLs,
ListObjectsV2 with a delimiter and pages, DeleteObjects, and the S3 error
codes clients branch on. Exits non-zero on the first mismatch.
"""
import hashlib
import http.client
import io
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    aws_access_key_id=os.environ["S3_ACCESS_KEY"],
    aws_secret_access_key=os.environ["S3_SECRET_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                  retries={"max_attempts": 8, "mode": "standard"}),
)


def code_of(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def check(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


s3.create_bucket(Bucket="boto")
check(code_of(lambda: s3.create_bucket(Bucket="boto")) == "BucketAlreadyOwnedByYou", "create twice")
check("boto" in [b["Name"] for b in s3.list_buckets()["Buckets"]], "ListBuckets")
check(code_of(lambda: s3.head_bucket(Bucket="absent-bucket")) in ("404", "NoSuchBucket"), "HeadBucket absent")

body = b"hello hypha " * 1000
put = s3.put_object(Bucket="boto", Key="dir/a.txt", Body=body, ContentType="text/plain",
                    Metadata={"color": "blue"}, CacheControl="max-age=60")
check(put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), "PutObject ETag is the MD5")
got = s3.get_object(Bucket="boto", Key="dir/a.txt")
check(got["Body"].read() == body, "GetObject bytes")
check(got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "blue"}, "type and metadata")
check(got["CacheControl"] == "max-age=60", "stored Cache-Control")
part = s3.get_object(Bucket="boto", Key="dir/a.txt", Range="bytes=6-10")
check(part["Body"].read() == body[6:11] and part["ContentRange"] == "bytes 6-10/%d" % len(body), "Range")
tail = s3.get_object(Bucket="boto", Key="dir/a.txt", Range="bytes=-5")
check(tail["Body"].read() == body[-5:], "suffix Range")
check(code_of(lambda: s3.get_object(Bucket="boto", Key="dir/a.txt", Range="bytes=99999999-")) == "InvalidRange", "bad Range")
check(code_of(lambda: s3.get_object(Bucket="boto", Key="dir/a.txt", IfMatch='"nope"')) == "PreconditionFailed", "If-Match")
check(code_of(lambda: s3.get_object(Bucket="boto", Key="dir/a.txt", IfNoneMatch=put["ETag"])) in ("304", "NotModified"), "If-None-Match")
check(code_of(lambda: s3.get_object(Bucket="boto", Key="absent")) == "NoSuchKey", "NoSuchKey")
check(code_of(lambda: s3.get_object(Bucket="absent-bucket", Key="x")) == "NoSuchBucket", "NoSuchBucket")

s3.copy_object(Bucket="boto", Key="copy.txt", CopySource={"Bucket": "boto", "Key": "dir/a.txt"})
head = s3.head_object(Bucket="boto", Key="copy.txt")
check(head["ETag"] == put["ETag"] and head["Metadata"] == {"color": "blue"}, "CopyObject keeps metadata")

big = os.urandom(13 * 1024 * 1024 + 17)
cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
s3.upload_fileobj(io.BytesIO(big), "boto", "big.bin", Config=cfg)
bh = s3.head_object(Bucket="boto", Key="big.bin")
check(bh["ContentLength"] == len(big) and bh["ETag"].endswith('-3"'), "multipart: 3 parts")
check(s3.get_object(Bucket="boto", Key="big.bin")["Body"].read() == big, "multipart bytes")
mp = s3.create_multipart_upload(Bucket="boto", Key="aborted.bin")
s3.upload_part(Bucket="boto", Key="aborted.bin", UploadId=mp["UploadId"], PartNumber=1, Body=b"x" * 100)
parts = s3.list_parts(Bucket="boto", Key="aborted.bin", UploadId=mp["UploadId"])["Parts"]
check([p["PartNumber"] for p in parts] == [1], "ListParts")
s3.abort_multipart_upload(Bucket="boto", Key="aborted.bin", UploadId=mp["UploadId"])
check(code_of(lambda: s3.list_parts(Bucket="boto", Key="aborted.bin", UploadId=mp["UploadId"])) == "NoSuchUpload", "aborted upload is gone")
check(code_of(lambda: s3.head_object(Bucket="boto", Key="aborted.bin")) in ("404", "NoSuchKey"), "aborted object absent")

url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "dir/a.txt"}, ExpiresIn=300)
check(urllib.request.urlopen(url).read() == body, "presigned GET")
purl = s3.generate_presigned_url("put_object", Params={"Bucket": "boto", "Key": "presigned.txt"}, ExpiresIn=300)
check("X-Amz-Signature=" in purl, "presigned URLs are Signature V4")
req = urllib.request.Request(purl, data=b"via presigned PUT", method="PUT",
                             headers={"Content-Type": "text/plain"})
urllib.request.urlopen(req).read()
check(s3.get_object(Bucket="boto", Key="presigned.txt")["Body"].read() == b"via presigned PUT", "presigned PUT")
check(url.rsplit("&", 1)[-1].startswith("X-Amz-Signature="), "the signature ends the URL")
tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
try:
    urllib.request.urlopen(tampered)
    check(False, "a tampered presigned URL is refused")
except urllib.error.HTTPError as e:
    check(e.code == 403 and b"SignatureDoesNotMatch" in e.read(), "a tampered presigned URL is refused")

for i in range(7):
    s3.put_object(Bucket="boto", Key="many/%02d" % i, Body=b"%d" % i)
keys, token = [], None
while True:
    kw = {"Bucket": "boto", "Prefix": "many/", "MaxKeys": 3}
    if token:
        kw["ContinuationToken"] = token
    page = s3.list_objects_v2(**kw)
    keys += [c["Key"] for c in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
check(keys == ["many/%02d" % i for i in range(7)], "ListObjectsV2 pages")
top = s3.list_objects_v2(Bucket="boto", Delimiter="/")
check([p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/", "many/"], "delimiter: common prefixes")
check(sorted(c["Key"] for c in top["Contents"]) == ["big.bin", "copy.txt", "presigned.txt"], "delimiter: top keys")
v1 = s3.list_objects(Bucket="boto", Prefix="many/", MaxKeys=4)
check(v1["IsTruncated"] and len(v1["Contents"]) == 4, "ListObjects v1")

odd = "odd/plus+key and space"
s3.put_object(Bucket="boto", Key=odd, Body=b"odd")
check(odd in [c["Key"] for c in s3.list_objects_v2(Bucket="boto", Prefix="odd/")["Contents"]],
      "a key with + and a space lists as itself (encoding-type=url)")
versions = s3.list_object_versions(Bucket="boto", Prefix="odd/")["Versions"]
check([(v["Key"], v["VersionId"]) for v in versions] == [(odd, "null")], "ListObjectVersions: one null version")
check(s3.list_objects_v2(Bucket="boto", MaxKeys=0)["IsTruncated"] is False, "max-keys=0")

# Declared 3 MiB, none sent: the answer comes before any body byte is read.
conn = http.client.HTTPConnection(urllib.parse.urlparse(os.environ["S3_ENDPOINT"]).netloc, timeout=10)
conn.putrequest("POST", "/boto?delete")
conn.putheader("Content-Length", str(3 << 20))
conn.endheaders()
answer = conn.getresponse()
check(answer.status == 400 and b"MaxMessageLengthExceeded" in answer.read(), "an oversized XML body is refused unread")
conn.close()

check(code_of(lambda: s3.delete_bucket(Bucket="boto")) == "BucketNotEmpty", "BucketNotEmpty")
every = [c["Key"] for c in s3.list_objects_v2(Bucket="boto")["Contents"]]
out = s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": k} for k in every]})
check(len(out["Deleted"]) == len(every) and not out.get("Errors"), "DeleteObjects")
s3.delete_bucket(Bucket="boto")
check("boto" not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "DeleteBucket")

wrong = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], aws_access_key_id=os.environ["S3_ACCESS_KEY"],
                     aws_secret_access_key="x" * 40, region_name="us-east-1",
                     config=Config(s3={"addressing_style": "path"}))
check(code_of(lambda: wrong.list_buckets()) == "SignatureDoesNotMatch", "a wrong secret")
unknown = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], aws_access_key_id="HYAAAAAAAAAAAAAAAAAA",
                       aws_secret_access_key="x" * 40, region_name="us-east-1",
                       config=Config(s3={"addressing_style": "path"}))
check(code_of(lambda: unknown.list_buckets()) == "InvalidAccessKeyId", "an unknown key")
reader = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], aws_access_key_id=os.environ["S3_READ_ACCESS_KEY"],
                      aws_secret_access_key=os.environ["S3_READ_SECRET_KEY"], region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}))
check(code_of(lambda: reader.create_bucket(Bucket="nope-bucket")) == "AccessDenied", "a read key may not write")
reader.list_buckets()
print("boto3: all checks passed")
