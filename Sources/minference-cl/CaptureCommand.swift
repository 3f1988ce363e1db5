import ArgumentParser
import FoundationEssentials
import MInferenceCL
import MInferenceCLModel

/// `minference-cl capture`: a model's attention inputs for a calibration prompt, in the layout
/// `search` reads, so a user searches a config for their own model.
struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Write every layer's post-RoPE q, k and v for a prompt as OUT/layerNN/{q,k,v}.npy (what search reads).",
        discussion: """
        q is [Hq, N, d], k and v [Hkv, N, d], float32. --forward cpu (the default): from the CPU reference forward pass \
        of the GGUF model (float32 activations, float64 sums; docs/MODEL-FILES.md). --forward device: from the device's \
        forward pass, dense attention, as `generate` runs it (--products, --attention-dtype; k and v as attention reads \
        them): seconds instead of minutes for a long prompt on a GPU. \
        Then: minference-cl search --layers OUT/layer00 ... OUT/layerNN.
        """)

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var precision: ModelPrecisionOptions
    @Option(name: .long, help: "Which forward pass computes q, k and v: cpu (the float64-sum reference) or device.")
    var forward = "cpu"

    @Option(name: .long, help: "The model, a GGUF file of the Llama architecture.")
    var model: String
    @Option(name: .long, help: "A UTF-8 text file with the calibration prompt.")
    var promptFile: String
    @Option(name: .long, help: "Folder for layerNN/{q,k,v}.npy (created).")
    var outDir: String

    /// `layer07`: two digits at least.
    static func folderName(_ layer: Int) -> String { "layer" + (layer < 10 ? "0" : "") + "\(layer)" }

    func run() throws {
        try reportingErrors {
            let file = try GGUFFile(path: model)
            let tokens = try Tokenizer(gguf: file).encode(try String(contentsOfFile: promptFile, encoding: .utf8))
            guard !tokens.isEmpty else { throw ValidationError("the prompt in \(promptFile) has no tokens") }
            guard forward == "cpu" || forward == "device" else { throw ValidationError("unknown --forward '\(forward)'; use cpu or device") }
            let reference = try ReferenceModel(gguf: file)
            let layers: [ReferenceModel.LayerQKV]
            if forward == "device" {
                let context = try deviceOptions.openContext()
                let (path, attentionType) = try precision.resolve(context: context)
                let device = try DeviceModel(model: reference, engine: AttentionEngine(context: context), capacity: tokens.count,
                                             attentionDType: attentionType, products: path)
                print("device: \(context.device); products: \(path.rawValue); attention reads \(device.attentionDType)")
                layers = try device.attentionInputs(tokens: tokens, chunk: 4096)
            } else {
                layers = reference.attentionInputs(tokens: tokens)
            }
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            var written: [String] = []
            do {
                for layer in layers {
                    let folder = outDir + "/" + Self.folderName(layer.layer)
                    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                    for (name, values, heads) in [("q", layer.q, layer.headCount), ("k", layer.k, layer.kvHeadCount), ("v", layer.v, layer.kvHeadCount)] {
                        let path = folder + "/\(name).npy"
                        try NPYFile.write(try Tensor(shape: [heads, layer.tokenCount, layer.headDim], dtype: .f32, values: values), to: path)
                        written.append(path)
                    }
                }
            } catch {
                OutputFiles.remove(written)
                throw error
            }
            print("\(tokens.count) tokens, \(reference.config.layerCount) layers: wrote \(outDir)/\(Self.folderName(0)) ... \(Self.folderName(reference.config.layerCount - 1))")
        }
    }
}
