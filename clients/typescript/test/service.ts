/**
 * The service the tests talk to: a real `companion serve` started by
 * tests/clients/test_typescript_client.py, which passes its URL and API keys in the environment
 * (`TS_CLIENT_URL`, `TS_CLIENT_KEYS`: a JSON object of key name to token).
 */

import { Client, type ClientOptions } from "companion-client";

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(
      `${name} is not set: these tests run against a real service, started by ` +
        "`.venv/bin/pytest tests/clients/test_typescript_client.py`",
    );
  }
  return value;
}

/** The service's base URL. */
export const baseUrl = required("TS_CLIENT_URL");

const keys = JSON.parse(required("TS_CLIENT_KEYS")) as Record<string, string>;

/** The token of one of the keys the service was given (`execute`, `tools`, `admin`...). */
export function key(name: string): string {
  const token = keys[name];
  if (token === undefined) {
    throw new Error(`no key named ${name} in TS_CLIENT_KEYS`);
  }
  return token;
}

/** A client of the service with the key `name`. */
export function client(name: string, options: Partial<ClientOptions> = {}): Client {
  return new Client({ baseUrl, apiKey: key(name), ...options });
}
