/**
 * Zod building blocks shared by the config's schemas: whole numbers and URLs.
 */
import { z } from 'zod';

export const positiveInt = z.number().int().positive();
export const nonNegInt = z.number().int().nonnegative();

/** An http:// or https:// URL; `what` names the key in the error when it is missing. */
export const httpUrl = (what: string) =>
  z
    .string({ required_error: `${what} is required` })
    .refine((v) => {
      try {
        const u = new URL(v);
        return u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        return false;
      }
    }, 'must be a URL (http:// or https://)');

/** A URL with one of the given schemes (credentials allowed). */
export const serviceUrl = (protocols: string[], example: string) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `must be a URL like ${example}`);
