/// Where `scripts/fetch-model.sh` puts SmolLM2-135M-Instruct (GGUF Q4_1), the model the demo,
/// the tests and the documentation use: `$MINFERENCECL_MODEL_GGUF` when set (any GGUF file),
/// else `$MINFERENCECL_MODEL_DIR/smollm2-135m-instruct-q4_1.gguf`, else
/// `$HOME/.cache/minference-cl/models/smollm2-135m-instruct-q4_1.gguf`.
public enum DefaultModel {
    /// The file name fetch-model.sh writes.
    public static let fileName = "smollm2-135m-instruct-q4_1.gguf"
    /// What to run when the file is missing.
    public static let fetchHint = "run scripts/fetch-model.sh (./scripts/setup-debian.sh runs it too), or give --model"

    /// The path for `environment` (a process's environment variables).
    public static func path(environment: [String: String]) -> String {
        if let file = environment["MINFERENCECL_MODEL_GGUF"], !file.isEmpty { return file }
        if let dir = environment["MINFERENCECL_MODEL_DIR"], !dir.isEmpty { return dir + "/" + fileName }
        return (environment["HOME"] ?? "") + "/.cache/minference-cl/models/" + fileName
    }
}
