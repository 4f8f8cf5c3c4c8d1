import * as pulumi from "@pulumi/pulumi";

/**
 * An error of this program, which pulumi prints as its message alone.
 *
 * When an error rejects an output, the Node SDK prefixes
 * `error serializing property "<name>": ` to its message for each property
 * the output passes through on its way to the engine (@pulumi/pulumi
 * runtime/rpc.js assigns to the message of the one error object that every
 * awaiter shares). A failed precondition reached operators as
 * `error serializing property "metadata": error serializing property
 * "metadata": error serializing property "outputs": <our message>`. This
 * error's message ignores those assignments. The whole-stack tests assert the
 * printed error through the CLI, so an SDK that changes this shows there.
 */
export class ProgramError extends pulumi.RunError {
    constructor(message: string) {
        super(message);
        this.name = "ProgramError";
        Object.defineProperty(this, "message", {
            get: () => message,
            set: () => undefined,
            enumerable: false,
            configurable: false,
        });
    }
}
