// The S3 calls atelier needs, over AWS SDK v3, with the standard AWS settings (environment, shared
// config and credentials files, profiles) so that MinIO, Ceph or any S3-protocol store works too.
// Failures a user can fix (credentials, missing bucket) become UsageErrors; the network stays exit 1.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { UsageError } from '../command.js';

export interface S3Location {
  bucket: string;
  /** The key without a trailing slash; '' for the bucket itself. */
  key: string;
}

/** `s3://bucket/key` -> {bucket, key}; the key is taken literally (no percent-decoding), as the aws CLI does. */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!match) throw new UsageError('expected s3://bucket/key', { file: url });
  return { bucket: match[1]!, key: match[2]!.replace(/\/+$/, '') };
}

export function s3Url(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

export interface ObjectInfo {
  etag: string;
  size: number;
  /** Whether the ETag is the MD5 of the bytes (single-part, not KMS-encrypted), so a download can be checked against it. */
  etagIsMd5: boolean;
}

/** One client per process, made on first use: loading the SDK costs ~100 ms that local runs need not pay. */
let client: Promise<S3Client> | undefined;

export function s3Client(env: NodeJS.ProcessEnv): Promise<S3Client> {
  client ??= makeClient(env);
  return client;
}

async function makeClient(env: NodeJS.ProcessEnv): Promise<S3Client> {
  // The SDK warns on stderr about future Node versions; stderr carries our own lines only.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { S3Client } = await import('@aws-sdk/client-s3');
  // A custom endpoint (MinIO, Ceph, a test server) rarely has per-bucket DNS names: address buckets by path there.
  const pathStyleSetting = env.ATELIER_S3_PATH_STYLE;
  const forcePathStyle = pathStyleSetting !== undefined ? ['1', 'true', 'yes'].includes(pathStyleSetting.toLowerCase()) : Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  // S3 needs some region to sign with; the aws CLI uses us-east-1 when none is configured, so do we.
  const probe = new S3Client({});
  const region = await probe.config.region().catch(() => 'us-east-1');
  probe.destroy();
  return new S3Client({
    region,
    forcePathStyle,
    // Older S3-compatible servers reject the SDK's default streaming checksums; downloads and uploads are checked here instead.
    ...(env.AWS_REQUEST_CHECKSUM_CALCULATION ? {} : { requestChecksumCalculation: 'WHEN_REQUIRED' as const }),
    ...(env.AWS_RESPONSE_CHECKSUM_VALIDATION ? {} : { responseChecksumValidation: 'WHEN_REQUIRED' as const }),
  });
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AuthorizationHeaderMalformed']);

/** Maps an SDK failure on `url` to an error: user-fixable ones are UsageErrors (exit 2), the rest runtime (exit 1). */
export function s3Failure(err: unknown, url: string): Error {
  const e = err as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? e.code ?? 'Error';
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(e.message ?? '')) {
    return new UsageError('no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or ~/.aws/credentials)', { file: url });
  }
  if (CREDENTIAL_ERRORS.has(name)) return new UsageError(`credentials refused (${name}): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE`, { file: url });
  if (name === 'NoSuchBucket') return new UsageError(`no such bucket '${parseS3Url(url).bucket}'`, { file: url });
  if (name === 'NoSuchKey' || status === 404) return new UsageError('no such key', { file: url });
  if (name === 'AccessDenied' || status === 403) return new UsageError('access denied (wrong credentials, or no permission for this key or bucket)', { file: url });
  if (status !== undefined && status >= 400 && status < 500) return new UsageError(`refused by the object store: ${name} (HTTP ${status})`, { file: url });
  const detail = (e.message ?? String(err)).split('\n')[0];
  return new Error(`${url}: object store unreachable or failing: ${status ? `HTTP ${status} ` : ''}${detail || name}`);
}

function isNotFound(err: unknown): boolean {
  const e = err as SdkError;
  return e.$metadata?.httpStatusCode === 404 || e.name === 'NotFound' || e.name === 'NoSuchKey';
}

/** Size and ETag of an object, or null when there is none under that key. */
export async function headObject(env: NodeJS.ProcessEnv, loc: S3Location): Promise<ObjectInfo | null> {
  const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  try {
    const out = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
    return objectInfo(out.ETag, out.ContentLength, out.ServerSideEncryption, out.SSECustomerAlgorithm);
  } catch (err) {
    if (isNotFound(err)) return null;
    // A HEAD answer has no body, so a 403 does not say why: a one-byte GET does (wrong key, or no right).
    if ((err as SdkError).$metadata?.httpStatusCode === 403) throw await explainForbidden(s3, loc, err);
    throw s3Failure(err, s3Url(loc.bucket, loc.key));
  }
}

async function explainForbidden(s3: S3Client, loc: S3Location, headError: unknown): Promise<Error> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, Range: 'bytes=0-0' }));
    await (out.Body as Readable | undefined)?.destroy();
  } catch (err) {
    return s3Failure(err, s3Url(loc.bucket, loc.key));
  }
  return s3Failure(headError, s3Url(loc.bucket, loc.key));
}

function objectInfo(etag: string | undefined, size: number | undefined, sse: string | undefined, sseCustomer: string | undefined): ObjectInfo {
  const plain = (etag ?? '').replace(/"/g, '');
  return { etag: plain, size: size ?? 0, etagIsMd5: /^[0-9a-f]{32}$/i.test(plain) && !sseCustomer && !(sse ?? '').startsWith('aws:kms') };
}

/** Fails with a UsageError when the bucket does not exist; a 403 (no ListBucket right) says nothing and passes. */
export async function checkBucket(env: NodeJS.ProcessEnv, { bucket, key }: S3Location): Promise<void> {
  const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    const e = err as SdkError;
    if (e.$metadata?.httpStatusCode === 403 && !CREDENTIAL_ERRORS.has(e.name ?? '')) return;
    if (isNotFound(err)) throw new UsageError(`no such bucket '${bucket}'`, { file: s3Url(bucket, key) });
    throw s3Failure(err, s3Url(bucket, key));
  }
}

/** The object's bytes as a stream, with its size and ETag. */
export async function getObject(env: NodeJS.ProcessEnv, loc: S3Location): Promise<{ body: Readable; info: ObjectInfo }> {
  const got = await getObjectUnlessMatch(env, loc);
  return got!;
}

/** Like getObject, but null when the object still has the ETag `ifNoneMatch` (HTTP 304): one request revalidates a cached copy. */
export async function getObjectUnlessMatch(env: NodeJS.ProcessEnv, loc: S3Location, ifNoneMatch?: string): Promise<{ body: Readable; info: ObjectInfo } | null> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, ...(ifNoneMatch ? { IfNoneMatch: `"${ifNoneMatch}"` } : {}) }));
    return { body: out.Body as Readable, info: objectInfo(out.ETag, out.ContentLength, out.ServerSideEncryption, out.SSECustomerAlgorithm) };
  } catch (err) {
    if (ifNoneMatch && (err as SdkError).$metadata?.httpStatusCode === 304) return null;
    throw s3Failure(err, s3Url(loc.bucket, loc.key));
  }
}

/** Part size of multipart uploads: ATELIER_S3_PART_MB (S3's minimum is 5), else 64 MiB; 10,000 parts at most. */
function partSize(env: NodeJS.ProcessEnv, size: number): number {
  const mb = Number(env.ATELIER_S3_PART_MB);
  const chosen = (Number.isFinite(mb) && mb >= 5 ? mb : 64) * 1024 * 1024;
  return Math.max(chosen, Math.ceil(size / 10_000));
}

/** Uploads the file at `path` whole under `loc` (in parts above the part size); returns the ETag the store gave it. */
export async function putFile(env: NodeJS.ProcessEnv, loc: S3Location, path: string, size: number): Promise<ObjectInfo> {
  const part = partSize(env, size);
  if (size > part) return putFileInParts(env, loc, path, size, part);
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  try {
    const out = await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: loc.key, Body: createReadStream(path), ContentLength: size }));
    return objectInfo(out.ETag, size, out.ServerSideEncryption, out.SSECustomerAlgorithm);
  } catch (err) {
    throw s3Failure(err, s3Url(loc.bucket, loc.key));
  }
}

/**
 * A multipart upload: the object appears only when the last call completes it, so a killed run
 * leaves the old object (and an incomplete upload, which the bucket's lifecycle rules reap).
 * Each part is checked against the MD5 the store returns for it.
 */
async function putFileInParts(env: NodeJS.ProcessEnv, loc: S3Location, path: string, size: number, part: number): Promise<ObjectInfo> {
  const { CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, AbortMultipartUploadCommand } = await import('@aws-sdk/client-s3');
  const { open } = await import('node:fs/promises');
  const { createHash } = await import('node:crypto');
  const s3 = await s3Client(env);
  const url = s3Url(loc.bucket, loc.key);
  let uploadId: string | undefined;
  const handle = await open(path, 'r');
  try {
    uploadId = (await s3.send(new CreateMultipartUploadCommand({ Bucket: loc.bucket, Key: loc.key }))).UploadId;
    const parts: Array<{ ETag: string; PartNumber: number }> = [];
    const buffer = Buffer.allocUnsafe(part);
    for (let offset = 0, number = 1; offset < size; offset += part, number++) {
      const length = Math.min(part, size - offset);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      if (bytesRead !== length) throw new Error(`${path}: changed while uploading`);
      const body = buffer.subarray(0, length);
      const out = await s3.send(new UploadPartCommand({ Bucket: loc.bucket, Key: loc.key, UploadId: uploadId, PartNumber: number, Body: body, ContentLength: length }));
      const etag = (out.ETag ?? '').replace(/"/g, '');
      const md5 = createHash('md5').update(body).digest('hex');
      if (/^[0-9a-f]{32}$/i.test(etag) && etag !== md5) throw new Error(`${url}: upload damaged: part ${number} MD5 mismatch`);
      parts.push({ ETag: out.ETag ?? '', PartNumber: number });
    }
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: loc.bucket, Key: loc.key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    return objectInfo(done.ETag, size, done.ServerSideEncryption, undefined);
  } catch (err) {
    if (uploadId) await s3.send(new AbortMultipartUploadCommand({ Bucket: loc.bucket, Key: loc.key, UploadId: uploadId })).catch(() => {});
    throw (err as SdkError).$metadata ? s3Failure(err, url) : err;
  } finally {
    await handle.close();
  }
}

export async function putBytes(env: NodeJS.ProcessEnv, loc: S3Location, bytes: Uint8Array, contentType?: string): Promise<void> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  try {
    await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: loc.key, Body: bytes, ContentLength: bytes.byteLength, ContentType: contentType }));
  } catch (err) {
    throw s3Failure(err, s3Url(loc.bucket, loc.key));
  }
}

/** Every key under `prefix` (which should end in '/'). */
export async function listKeys(env: NodeJS.ProcessEnv, bucket: string, prefix: string): Promise<string[]> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  const keys: string[] = [];
  let token: string | undefined;
  try {
    do {
      const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  } catch (err) {
    throw s3Failure(err, s3Url(bucket, prefix));
  }
  return keys;
}

export async function deleteKeys(env: NodeJS.ProcessEnv, bucket: string, keys: string[]): Promise<void> {
  const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  for (const key of keys) {
    try {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      throw s3Failure(err, s3Url(bucket, key));
    }
  }
}

/** Lets the process exit: the SDK keeps sockets alive otherwise. */
export async function closeS3(): Promise<void> {
  if (!client) return;
  (await client.catch(() => null))?.destroy();
  client = undefined;
}
