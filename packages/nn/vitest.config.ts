import { packageProject } from "../../tools/vitest-project";

export default packageProject("nn", ["core/parity", "core"]);
