import ArgumentParser
import FoundationEssentials
import MInferenceCLModel

/// The model file and the text of the commands that run the real model on a text of their own
/// choosing (`demo`, `check-model`).
enum ModelInputs {
    /// `--model`, else `DefaultModel`'s path.
    /// - Throws: `ValidationError` naming the path and `scripts/fetch-model.sh` when the file is missing.
    static func modelPath(_ given: String?) throws -> String {
        let path = given ?? DefaultModel.path(environment: Environment.variables)
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no model at \(path): \(DefaultModel.fetchHint)") }
        return path
    }

    /// The tokens of the file `text`, else of the licence texts (`LicenceTexts`, at least `wanted`
    /// tokens when the folder has them), and words naming where they came from.
    /// - Throws: `ValidationError` for a text without tokens or no licence texts; file errors.
    static func textTokens(_ text: String?, wanted: Int, tokenizer: Tokenizer) throws -> (tokens: [Int32], source: String) {
        guard let text else {
            let licences = try LicenceTexts(tokens: wanted, tokenizer: tokenizer)
            return (licences.tokens, "the licence texts of \(LicenceTexts.folder) (\(licences.files.joined(separator: ", ")))")
        }
        let tokens = tokenizer.encode(try String(contentsOfFile: text, encoding: .utf8))
        guard !tokens.isEmpty else { throw ValidationError("\(text) has no tokens") }
        return (tokens, text)
    }
}
