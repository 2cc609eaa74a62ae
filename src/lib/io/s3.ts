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

/** Uploads the file at `path` whole under `loc`; returns the ETag the store gave it. */
export async function putFile(env: NodeJS.ProcessEnv, loc: S3Location, path: string, size: number): Promise<ObjectInfo> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = await s3Client(env);
  try {
    const out = await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: loc.key, Body: createReadStream(path), ContentLength: size }));
    return objectInfo(out.ETag, size, out.ServerSideEncryption, out.SSECustomerAlgorithm);
  } catch (err) {
    throw s3Failure(err, s3Url(loc.bucket, loc.key));
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
