/**
 * An image_url → decoded RGB pixels, refused early and clearly:
 *
 *   data:image/png;base64,…  data:image/jpeg;base64,…      decoded here (no other media types)
 *   http(s)://…                                            refused (400) unless allowRemote: then
 *                                                          fetched once, size-capped, with a timeout
 *   anything else                                          refused (400)
 *
 * The pixel cap is checked from the PNG/JPEG header before anything is inflated or decoded, so a
 * small file that would decode to gigabytes costs nothing.
 */
import { decodeImage, imageSize, type RawImage } from '../convnext/decode.js';
import { ApiError, badRequest } from './errors.js';

export interface ImageLimits {
  /** Largest width × height accepted. */
  maxPixels: number;
  /** Largest encoded image (bytes), for remote fetches; a data URL is bounded by the body cap. */
  maxBytes: number;
  /** Fetch http(s) URLs. Default false: the server makes no outbound requests. */
  allowRemote: boolean;
  /** ms a remote fetch may take. */
  fetchTimeoutMs: number;
}

const DATA_URL = /^data:([^;,]*)((?:;[^;,]*)*),/;
const MEDIA_TYPES = new Set(['image/png', 'image/jpeg', 'image/jpg']);

/** The bytes behind an image_url (a data: URL, or a fetched http(s) URL when allowed). */
async function imageBytes(url: string, param: string, limits: ImageLimits): Promise<Uint8Array> {
  const data = DATA_URL.exec(url);
  if (data) {
    const mediaType = data[1].toLowerCase();
    if (!MEDIA_TYPES.has(mediaType)) {
      throw badRequest(param, `unsupported image type '${mediaType || 'none'}'; send PNG or JPEG (data:image/png;base64,… or data:image/jpeg;base64,…)`, 'unsupported_image');
    }
    if (!data[2].split(';').includes('base64')) throw badRequest(param, 'the data URL must be base64-encoded (data:image/png;base64,…)', 'invalid_image');
    const payload = url.slice(data[0].length).replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 === 1) throw badRequest(param, 'the data URL payload is not valid base64', 'invalid_image');
    return new Uint8Array(Buffer.from(payload, 'base64'));
  }
  if (/^https?:\/\//i.test(url)) {
    if (!limits.allowRemote) {
      throw badRequest(
        param,
        'remote image URLs are refused (this server makes no outbound requests); send the image inline as a data URL ' +
          '(data:image/png;base64,…), or start the server with --allow-remote-images',
        'remote_image_refused',
      );
    }
    return fetchImage(url, param, limits);
  }
  throw badRequest(param, `must be a data: URL (data:image/png;base64,…)${limits.allowRemote ? ' or an http(s) URL' : ''}, got '${url.slice(0, 40)}'`, 'invalid_image');
}

async function fetchImage(url: string, param: string, limits: ImageLimits): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(limits.fetchTimeoutMs), redirect: 'follow' });
  } catch (e) {
    throw badRequest(param, `cannot fetch ${url}: ${(e as Error).message}`, 'image_fetch_failed');
  }
  if (!response.ok) throw badRequest(param, `cannot fetch ${url}: HTTP ${response.status}`, 'image_fetch_failed');
  const declared = Number(response.headers.get('content-length'));
  if (declared > limits.maxBytes) {
    await response.body?.cancel();
    throw new ApiError(413, `${param}: ${url} is ${declared} bytes, over the ${limits.maxBytes}-byte limit`, { param, code: 'image_too_large' });
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body!.getReader();
  for (let part = await reader.read(); !part.done; part = await reader.read()) {
    size += part.value.length;
    if (size > limits.maxBytes) {
      await reader.cancel();
      throw new ApiError(413, `${param}: ${url} is over the ${limits.maxBytes}-byte limit`, { param, code: 'image_too_large' });
    }
    chunks.push(part.value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Resolves, size-checks and decodes one image_url. Every failure is an ApiError naming `param`. */
export async function readImage(url: string, param: string, limits: ImageLimits): Promise<RawImage> {
  const bytes = await imageBytes(url, param, limits);
  let size;
  try {
    size = imageSize(bytes, 'image');
  } catch (e) {
    throw badRequest(param, (e as Error).message, 'invalid_image');
  }
  if (size.width * size.height > limits.maxPixels) {
    throw badRequest(
      param,
      `the image is ${size.width}×${size.height} = ${size.width * size.height} pixels, over this server's limit of ${limits.maxPixels}; downscale it first`,
      'image_too_large',
    );
  }
  try {
    return await decodeImage(bytes, 'image');
  } catch (e) {
    throw badRequest(param, (e as Error).message, 'invalid_image');
  }
}
