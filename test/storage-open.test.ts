import { describe, expect, it } from "vitest";
import { ErrorCodes, TwillError } from "../src/errors.js";
import { openStorage, redact } from "../src/storage/open.js";

async function expectCode(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TwillError);
  expect((error as TwillError).code).toBe(code);
  if (message) expect((error as TwillError).message).toMatch(message);
}

describe("openStorage: URLs and options", () => {
  it("rejects unknown schemes, missing paths and bad URLs with what is accepted", async () => {
    await expectCode(openStorage("ftp://x"), ErrorCodes.InvalidUrl, /unknown scheme "ftp:\/\/"/);
    await expectCode(openStorage(""), ErrorCodes.InvalidUrl);
    await expectCode(openStorage("just-a-path"), ErrorCodes.InvalidUrl, /no scheme/);
    await expectCode(openStorage("file://"), ErrorCodes.InvalidUrl, /no path/);
    await expectCode(openStorage("memory://a/b"), ErrorCodes.InvalidUrl);
    await expectCode(openStorage("memory://x?cache=1"), ErrorCodes.InvalidUrl, /unknown parameter "cache"/);
    await expectCode(openStorage(42 as unknown as string), ErrorCodes.InvalidUrl);
    await expectCode(
      openStorage("s3://bucket/p?endpiont=http://x"),
      ErrorCodes.InvalidUrl,
      /unknown parameter "endpiont"/,
    );
    await expectCode(openStorage("s3:///nobucket"), ErrorCodes.InvalidUrl);
  });

  it("validates options with zod and names the bad field", async () => {
    await expectCode(
      openStorage("memory://", { bogus: 1 } as never),
      ErrorCodes.InvalidArgument,
      /invalid storage options/,
    );
    await expectCode(openStorage("memory://", { region: 5 } as never), ErrorCodes.InvalidArgument, /region/);
    await expectCode(
      openStorage("memory://", { segmentBytesMax: 10 }),
      ErrorCodes.InvalidArgument,
      /segmentBytesMax/,
    );
    await expectCode(
      openStorage("memory://", { endpoint: "not a url" }),
      ErrorCodes.InvalidArgument,
      /endpoint/,
    );
  });

  it("shares a named memory:// store across opens", async () => {
    const a = await openStorage("memory://shared-test");
    await a.write("k", new Uint8Array([1]));
    await a.close();
    const b = await openStorage("memory://shared-test");
    expect(await b.read("k")).toEqual(new Uint8Array([1]));
    const anonymous = await openStorage("memory://");
    await expect(anonymous.read("k")).rejects.toMatchObject({ code: ErrorCodes.NotFound });
    await expect(b.read("x")).rejects.toMatchObject({ code: ErrorCodes.NotFound });
    await b.close();
    await expect(b.read("k")).rejects.toMatchObject({ code: ErrorCodes.Closed });
  });

  it("redacts credentials from URLs", () => {
    expect(redact("s3://b/p?accessKeyId=AK&secretAccessKey=SECRET")).toBe(
      "s3://b/p?accessKeyId=***&secretAccessKey=***",
    );
    expect(redact("s3://user:pass@b/p")).toBe("s3://***@b/p");
  });
});
